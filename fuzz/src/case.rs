//! One fuzz case: a cluster shape, flag values, a workload and a fault schedule, and its rendering as a scenario
//! file (format v1, DESIGN 7). The case is run by parsing that text, so what fails is exactly what the written file
//! replays.
//!
//! Process and machine indexes are drawn independently of the shape and reduced modulo the counts when rendered,
//! so every combination a strategy produces (and every shrink of it) is a valid scenario.

use std::fmt::Write as _;

/// A process a fault names; the index is reduced modulo the shape's count of that role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    Tablet(u8),
    Nameserver(u8),
    Taskmanager(u8),
}

/// The replica a `corrupt_tail` fault damages.
///
/// `Tablet(i)`: tablet i, whose newest binlog (the runner's choice of file) is damaged; the other replica is the
/// next tablet. `Leader(pid)` and `Follower(pid)`: the leader or first alive follower of that partition of the
/// fuzzed table (the pid reduced modulo the partition count) when the step runs, whose binlog of that partition
/// is damaged; the other replica is a follower of it, or its leader. A table of one replica has no follower: a
/// `Follower` falls on the leader, and no other replica is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replica {
    Tablet(u8),
    Leader(u8),
    Follower(u8),
}

/// How [`Fault::CoordDown`] takes the coordination server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordDown {
    Crash,
    Restart,
    PowerLoss,
}

/// What happens to another replica of the damaged partition after the damaged one started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Nothing,
    Restart,
    /// A crash the daemon restarts after `restart_delay`; without a daemon (nothing would start it again, and its
    /// role target names another process by then) a restart.
    Crash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub tablets: usize,
    pub nameservers: usize,
    pub taskmanagers: usize,
    pub daemon: bool,
    pub partitions: u32,
    /// Reduced to the tablet count when rendered.
    pub replicas: u32,
    pub semisync: bool,
}

/// Flag values around their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagSet {
    pub zk_session_timeout: u64,
    pub tablet_heartbeat_timeout: u64,
    pub binlog_sync_batch_size: u64,
    pub binlog_sync_to_disk_interval: u64,
    pub restart_delay: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Writes per simulated second.
    pub rate: u32,
    pub reads: bool,
    /// Rows of a TaskManager import submitted at 1 s (when the shape has a TaskManager).
    pub import_rows: Option<u32>,
}

/// One fault and how long it lasts (its undo step comes `dur_ms` later where it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Crash(Proc),
    Restart(Proc),
    /// Power loss of the machine of tablet `m`; the machine is started by hand `dur_ms` later and `recoverdata`
    /// runs 3 s after that, as the seed's procedure says.
    MachineRestart {
        m: u8,
        dur_ms: u64,
    },
    /// Two sides: the processes whose bit is set in `mask` (bit 0 the coordination server, then tablets,
    /// nameservers, taskmanagers in order) against the rest.
    Partition {
        mask: u16,
        dur_ms: u64,
    },
    Isolate {
        p: Proc,
        dur_ms: u64,
    },
    IsolateFromCoord {
        p: Proc,
        dur_ms: u64,
    },
    Clog {
        from: Proc,
        to: Proc,
        dur_ms: u64,
    },
    Pause {
        p: Proc,
        dur_ms: u64,
    },
    /// The coordination server frozen for `permille` thousandths of the case's `zk_session_timeout`: below 1000
    /// every session survives it, above it the sessions may expire (the strategy draws both sides).
    PauseCoord {
        permille: u16,
    },
    /// The coordination server down for `permille` thousandths of the session timeout (either side of it, as
    /// [`Fault::PauseCoord`]): killed and started again, or its machine's power lost (it keeps only what it
    /// fsynced, which is every change it answered) and started again; `how` [`CoordDown::Restart`] starts it at
    /// once. Its write-ahead log brings the tree back (DESIGN 4.2).
    CoordDown {
        how: CoordDown,
        permille: u16,
    },
    /// One way between the coordination server and a process: `to_coord` drops what `p` sends to the coordination
    /// server, otherwise what the coordination server sends to `p`.
    ClogCoord {
        p: Proc,
        to_coord: bool,
        dur_ms: u64,
    },
    /// The nameservers whose bit is set in `ns_mask` (all of them when none is) cut from the tablets whose bit is
    /// set in `tablet_mask` (the first when none is); the coordination server is in neither group, so it keeps
    /// every link.
    NsCut {
        ns_mask: u8,
        tablet_mask: u8,
        dur_ms: u64,
    },
    SlowFsync {
        tablet: u8,
        dur_ms: u64,
    },
    WriteError {
        tablet: u8,
        dur_ms: u64,
    },
    /// Crash a replica, damage the tail of a binlog of it, start it again 500 ms later; then, `after_ms` after that
    /// start, `then` happens to another replica of the same partition (see [`Replica`]), so that a follower must be
    /// fed past the damaged record.
    CorruptTail {
        replica: Replica,
        then: Then,
        after_ms: u64,
    },
    /// `makesnapshot` of one partition of the fuzzed table through the ns_client (a returning replica with a
    /// local snapshot takes the kReAddReplicaNoSendOP path).
    MakeSnapshot {
        pid: u8,
    },
    /// Network-wide packet loss (in percent) and latency (1 ms up to `latency_ms`), back to the defaults after
    /// `dur_ms`.
    Network {
        loss_pct: u8,
        latency_ms: u64,
        dur_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedFault {
    pub at_ms: u64,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzCase {
    pub shape: Shape,
    pub flags: FlagSet,
    pub load: Load,
    pub faults: Vec<TimedFault>,
    /// The simulator's seed for the run.
    pub seed: u64,
}

/// The table every case writes to, and the one imports go to.
pub const TABLE: &str = "fuzz";
pub const IMPORT_TABLE: &str = "imports";

/// One step of the rendered scenario, before it is written.
struct Step {
    at_ms: u64,
    body: String,
}

impl FuzzCase {
    fn proc_name(&self, p: Proc) -> String {
        let pick = |i: u8, n: usize| usize::from(i) % n.max(1) + 1;
        match p {
            Proc::Tablet(i) => format!("tablet-{}", pick(i, self.shape.tablets)),
            Proc::Nameserver(i) => format!("nameserver-{}", pick(i, self.shape.nameservers)),
            Proc::Taskmanager(i) if self.shape.taskmanagers > 0 => {
                format!("taskmanager-{}", pick(i, self.shape.taskmanagers))
            }
            // No TaskManager to fault: the fault falls on a tablet instead.
            Proc::Taskmanager(i) => format!("tablet-{}", pick(i, self.shape.tablets)),
        }
    }

    fn tablet(&self, i: u8) -> String {
        self.proc_name(Proc::Tablet(i))
    }

    /// How long a coordination-server pause of `permille` thousandths of the session timeout lasts.
    fn coord_pause_ms(&self, permille: u16) -> u64 {
        (self.flags.zk_session_timeout * u64::from(permille) / 1000).max(1)
    }

    /// Replicas in the fuzzed table, as rendered.
    fn replicas(&self) -> u32 {
        self.shape.replicas.clamp(1, self.shape.tablets.min(3) as u32)
    }

    /// A `corrupt_tail` fault's target, the `path` line of its disk fault (empty for the runner's choice) and the
    /// other replica of the partition, if it has one.
    fn corrupt_target(&self, r: Replica) -> (String, String, Option<String>) {
        let pid = |p: u8| u32::from(p) % self.shape.partitions.max(1);
        // The fuzzed table is created first, so its tid is 1; a partition's binlog starts at segment 0, which the
        // short runs of a case do not roll.
        let path = |p: u32| format!("path = \"1_{p}/binlog/00000000.log\"\n");
        let single = self.replicas() == 1;
        match r {
            Replica::Tablet(i) => {
                let other = (self.shape.tablets > 1).then(|| self.tablet(i.wrapping_add(1)));
                (self.tablet(i), String::new(), other)
            }
            Replica::Follower(p) if single => (format!("leader({TABLE},{})", pid(p)), path(pid(p)), None),
            Replica::Leader(p) => (
                format!("leader({TABLE},{})", pid(p)),
                path(pid(p)),
                (!single).then(|| format!("follower({TABLE},{})", pid(p))),
            ),
            Replica::Follower(p) => {
                (format!("follower({TABLE},{})", pid(p)), path(pid(p)), Some(format!("leader({TABLE},{})", pid(p))))
            }
        }
    }

    /// Every process a partition can name, in mask bit order.
    fn processes(&self) -> Vec<String> {
        let mut all = vec!["coord".to_string()];
        all.extend((1..=self.shape.tablets).map(|i| format!("tablet-{i}")));
        all.extend((1..=self.shape.nameservers).map(|i| format!("nameserver-{i}")));
        all.extend((1..=self.shape.taskmanagers).map(|i| format!("taskmanager-{i}")));
        all
    }

    fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut add = |at_ms: u64, body: String| steps.push(Step { at_ms, body });
        let heal = "do = \"heal\"\n".to_string();
        // When the steps that name a replica by its role run.
        let role_steps: Vec<u64> = self
            .faults
            .iter()
            .filter_map(|f| match f.fault {
                Fault::CorruptTail { replica: Replica::Leader(_) | Replica::Follower(_), after_ms, .. } => {
                    Some([f.at_ms, f.at_ms + 500, f.at_ms + 500 + after_ms])
                }
                _ => None,
            })
            .flatten()
            .collect();
        if let (Some(rows), true) = (self.load.import_rows, self.shape.taskmanagers > 0) {
            // At 1 s, before any fault, the TaskManager takes the job: a refusal is a violation.
            add(
                1000,
                format!("do = \"ns_client\"\ncmd = \"submitjob import {IMPORT_TABLE} gen:{rows}\"\nexpect_ok = true\n"),
            );
        }
        for f in &self.faults {
            let at = f.at_ms;
            match &f.fault {
                Fault::Crash(p) => {
                    let name = self.proc_name(*p);
                    add(at, format!("do = \"crash\"\ntarget = \"{name}\"\n"));
                    if !self.shape.daemon {
                        // Without a daemon nothing restarts it: an operator does, after the restart delay.
                        add(at + self.flags.restart_delay, format!("do = \"start\"\ntarget = \"{name}\"\n"));
                    }
                }
                Fault::Restart(p) => add(at, format!("do = \"restart\"\ntarget = \"{}\"\n", self.proc_name(*p))),
                Fault::MachineRestart { m, dur_ms } => {
                    let machine = format!("machine({})", self.tablet(*m));
                    add(at, format!("do = \"machine_restart\"\ntarget = \"{machine}\"\n"));
                    add(at + dur_ms, format!("do = \"start\"\ntarget = \"{machine}\"\n"));
                    // The seed's procedure after a power loss: start the processes, then the one-click recovery.
                    add(at + dur_ms + 3000, "do = \"recoverdata\"\n".to_string());
                }
                Fault::Partition { mask, dur_ms } => {
                    let all = self.processes();
                    let (a, b): (Vec<_>, Vec<_>) =
                        all.iter().enumerate().partition(|(i, _)| mask & (1u16 << (*i as u32 % 16)) != 0);
                    let quote = |g: Vec<(usize, &String)>| {
                        g.iter().map(|(_, n)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
                    };
                    if a.is_empty() || b.is_empty() {
                        // One side empty: cut the first process off instead.
                        add(at, format!("do = \"isolate\"\ntarget = \"{}\"\n", all[1]));
                    } else {
                        add(at, format!("do = \"partition\"\ngroups = [[{}], [{}]]\n", quote(a), quote(b)));
                    }
                    add(at + dur_ms, heal.clone());
                }
                Fault::Isolate { p, dur_ms } => {
                    add(at, format!("do = \"isolate\"\ntarget = \"{}\"\n", self.proc_name(*p)));
                    add(at + dur_ms, heal.clone());
                }
                Fault::IsolateFromCoord { p, dur_ms } => {
                    add(at, format!("do = \"isolate_from_coord\"\ntarget = \"{}\"\n", self.proc_name(*p)));
                    add(at + dur_ms, heal.clone());
                }
                Fault::Clog { from, to, dur_ms } => {
                    let (from, to) = (self.proc_name(*from), self.proc_name(*to));
                    if from != to {
                        add(at, format!("do = \"clog\"\nfrom = \"{from}\"\nto = \"{to}\"\n"));
                        add(at + dur_ms, heal.clone());
                    }
                }
                Fault::Pause { p, dur_ms } => {
                    let name = self.proc_name(*p);
                    add(at, format!("do = \"pause\"\ntarget = \"{name}\"\n"));
                    add(at + dur_ms, format!("do = \"resume\"\ntarget = \"{name}\"\n"));
                }
                Fault::PauseCoord { permille } => {
                    let dur_ms = self.coord_pause_ms(*permille);
                    if role_steps.iter().any(|t| (at..=at + dur_ms).contains(t)) {
                        // The runner resolves a leader/follower target by reading the coordination server: a step
                        // naming one while it is paused waits for the resume behind it, until the time limit.
                        continue;
                    }
                    add(at, "do = \"pause\"\ntarget = \"coord\"\n".into());
                    add(at + dur_ms, "do = \"resume\"\ntarget = \"coord\"\n".into());
                }
                Fault::CoordDown { how, permille } => {
                    let dur_ms = if *how == CoordDown::Restart { 0 } else { self.coord_pause_ms(*permille) };
                    if role_steps.iter().any(|t| (at..=at + dur_ms + 1000).contains(t)) {
                        // As for a pause: a role target is read from the coordination server.
                        continue;
                    }
                    match how {
                        CoordDown::Crash => {
                            add(at, "do = \"crash\"\ntarget = \"coord\"\n".into());
                            add(at + dur_ms, "do = \"start\"\ntarget = \"coord\"\n".into());
                        }
                        CoordDown::Restart => add(at, "do = \"restart\"\ntarget = \"coord\"\n".into()),
                        CoordDown::PowerLoss => {
                            add(at, "do = \"machine_restart\"\ntarget = \"machine(coord)\"\n".into());
                            add(at + dur_ms, "do = \"start\"\ntarget = \"machine(coord)\"\n".into());
                        }
                    }
                }
                Fault::ClogCoord { p, to_coord, dur_ms } => {
                    let name = self.proc_name(*p);
                    let (from, to) = if *to_coord { (name.as_str(), "coord") } else { ("coord", name.as_str()) };
                    add(at, format!("do = \"clog\"\nfrom = \"{from}\"\nto = \"{to}\"\n"));
                    add(at + dur_ms, heal.clone());
                }
                Fault::NsCut { ns_mask, tablet_mask, dur_ms } => {
                    let pick = |mask: u8, n: usize, role: &str| {
                        let mut g: Vec<String> = (0..n)
                            .filter(|i| mask & (1u8 << (i % 8)) != 0)
                            .map(|i| format!("\"{role}-{}\"", i + 1))
                            .collect();
                        if g.is_empty() {
                            g.push(format!("\"{role}-1\""));
                        }
                        g.join(", ")
                    };
                    let ns = if *ns_mask == 0 {
                        (1..=self.shape.nameservers)
                            .map(|i| format!("\"nameserver-{i}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    } else {
                        pick(*ns_mask, self.shape.nameservers, "nameserver")
                    };
                    let tablets = pick(*tablet_mask, self.shape.tablets, "tablet");
                    add(at, format!("do = \"partition\"\ngroups = [[{ns}], [{tablets}]]\n"));
                    add(at + dur_ms, heal.clone());
                }
                Fault::SlowFsync { tablet, dur_ms } => {
                    let name = self.tablet(*tablet);
                    add(at, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"slow_fsync\"\n"));
                    add(at + dur_ms, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"clear\"\n"));
                }
                Fault::WriteError { tablet, dur_ms } => {
                    let name = self.tablet(*tablet);
                    add(at, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"write_error\"\n"));
                    add(at + dur_ms, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"clear\"\n"));
                }
                Fault::CorruptTail { replica, then, after_ms } => {
                    let (name, path, other) = self.corrupt_target(*replica);
                    add(at, format!("do = \"crash\"\ntarget = \"{name}\"\n"));
                    add(at, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"corrupt_tail\"\n{path}"));
                    add(at + 500, format!("do = \"start\"\ntarget = \"{name}\"\n"));
                    let verb = match then {
                        Then::Nothing => None,
                        Then::Crash if self.shape.daemon => Some("crash"),
                        Then::Restart | Then::Crash => Some("restart"),
                    };
                    if let (Some(verb), Some(other)) = (verb, other) {
                        add(at + 500 + after_ms, format!("do = \"{verb}\"\ntarget = \"{other}\"\n"));
                    }
                }
                Fault::MakeSnapshot { pid } => {
                    let pid = u32::from(*pid) % self.shape.partitions.max(1);
                    add(at, format!("do = \"ns_client\"\ncmd = \"makesnapshot {TABLE} {pid}\"\n"));
                }
                Fault::Network { loss_pct, latency_ms, dur_ms } => {
                    let loss = f64::from(*loss_pct) / 100.0;
                    let latency = (*latency_ms).max(1);
                    add(at, format!("do = \"network\"\nloss = {loss}\nlatency = \"1ms..{latency}ms\"\n"));
                    add(at + dur_ms, "do = \"network\"\nloss = 0.0\nlatency = \"1ms..10ms\"\n".into());
                }
            }
        }
        // Stable: steps at the same time keep their order (a crash before its corruption).
        steps.sort_by_key(|s| s.at_ms);
        steps
    }

    /// The time of the last step, in ms.
    pub fn last_step_ms(&self) -> u64 {
        self.steps().last().map_or(0, |s| s.at_ms)
    }

    /// The case as a scenario file; `name` goes in its `name`.
    pub fn to_toml(&self, name: &str) -> String {
        let s = &self.shape;
        let steps = self.steps();
        let end = steps.last().map_or(0, |s| s.at_ms);
        let mut out = String::new();
        let _ = writeln!(out, "name = {name:?}");
        let _ = writeln!(
            out,
            "description = \"\"\"\nFound by mldb-fuzz. Replay: mldb-sim replay <this file> --seed {}.\"\"\"",
            self.seed
        );
        let _ = writeln!(out, "seeds = 1");
        // Writes go on for 5 s after the last step, so the service after the faults ended is observed. The duration
        // is only a limit (the run ends with its steps and writes): an operator step may wait on a paused tablet
        // (recoverdata waits 10 s per call), so the limit leaves a minute, and each recoverdata may wait for the
        // nameserver's ops before and after it (the runner gives it 120 s each, and 60 s per load): seed 394785's
        // waited 120 s on ops stuck behind a clog.
        let recoverdata = steps.iter().filter(|s| s.body.contains("\"recoverdata\"")).count() as u64;
        let _ = writeln!(out, "duration = \"{}ms\"\n", end + 60_000 + recoverdata * 360_000);
        let _ = writeln!(out, "[cluster]");
        let _ = writeln!(out, "tablets = {}", s.tablets);
        let _ = writeln!(out, "nameservers = {}", s.nameservers);
        let _ = writeln!(out, "taskmanagers = {}", s.taskmanagers);
        let _ = writeln!(out, "daemon = {}\n", s.daemon);
        let f = &self.flags;
        let _ = writeln!(out, "[flags]");
        let _ = writeln!(out, "zk_session_timeout = {}", f.zk_session_timeout);
        let _ = writeln!(out, "tablet_heartbeat_timeout = {}", f.tablet_heartbeat_timeout);
        let _ = writeln!(out, "binlog_sync_batch_size = {}", f.binlog_sync_batch_size);
        let _ = writeln!(out, "binlog_sync_to_disk_interval = {}", f.binlog_sync_to_disk_interval);
        let _ = writeln!(out, "restart_delay = {}\n", f.restart_delay);
        let replicas = self.replicas();
        let replication = if s.semisync && replicas > 1 { "semisync" } else { "async" };
        let _ = writeln!(out, "[[table]]\nname = \"{TABLE}\"\npartitions = {}\nreplicas = {replicas}", s.partitions);
        let _ = writeln!(out, "replication = \"{replication}\"\n");
        if self.load.import_rows.is_some() && s.taskmanagers > 0 {
            let _ = writeln!(out, "[[table]]\nname = \"{IMPORT_TABLE}\"\npartitions = 2\nreplicas = {replicas}\n");
        }
        let stop = end + 5_000;
        let _ = writeln!(
            out,
            "[[workload]]\nkind = \"write\"\ntable = \"{TABLE}\"\nrate = {}\nstop = \"{stop}ms\"\n",
            self.load.rate
        );
        if self.load.reads {
            let _ =
                writeln!(out, "[[workload]]\nkind = \"read\"\ntable = \"{TABLE}\"\nrate = 20\nstop = \"{stop}ms\"\n");
        }
        for step in &steps {
            let _ = writeln!(out, "[[step]]\nat = \"{}ms\"\n{}", step.at_ms, step.body);
        }
        out
    }

    /// How many faults the schedule holds.
    pub fn fault_count(&self) -> usize {
        self.faults.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn case(faults: Vec<TimedFault>) -> FuzzCase {
        FuzzCase {
            shape: Shape {
                tablets: 3,
                nameservers: 2,
                taskmanagers: 1,
                daemon: false,
                partitions: 2,
                replicas: 3,
                semisync: true,
            },
            flags: FlagSet {
                zk_session_timeout: 2000,
                tablet_heartbeat_timeout: 1000,
                binlog_sync_batch_size: 32,
                binlog_sync_to_disk_interval: 1000,
                restart_delay: 3000,
            },
            load: Load { rate: 50, reads: true, import_rows: Some(100) },
            faults,
            seed: 7,
        }
    }

    #[test]
    fn every_fault_renders_as_a_valid_scenario() {
        let faults = vec![
            TimedFault { at_ms: 9000, fault: Fault::Crash(Proc::Tablet(4)) },
            TimedFault { at_ms: 2000, fault: Fault::Restart(Proc::Nameserver(1)) },
            TimedFault { at_ms: 3000, fault: Fault::MachineRestart { m: 1, dur_ms: 2000 } },
            TimedFault { at_ms: 4000, fault: Fault::Partition { mask: 0b101, dur_ms: 1000 } },
            TimedFault { at_ms: 4000, fault: Fault::Partition { mask: 0, dur_ms: 1000 } },
            TimedFault { at_ms: 5000, fault: Fault::Isolate { p: Proc::Taskmanager(0), dur_ms: 1000 } },
            TimedFault { at_ms: 5000, fault: Fault::IsolateFromCoord { p: Proc::Tablet(0), dur_ms: 1000 } },
            TimedFault { at_ms: 6000, fault: Fault::Clog { from: Proc::Tablet(0), to: Proc::Tablet(1), dur_ms: 1000 } },
            TimedFault { at_ms: 6000, fault: Fault::Pause { p: Proc::Tablet(2), dur_ms: 1000 } },
            TimedFault { at_ms: 7000, fault: Fault::PauseCoord { permille: 500 } },
            TimedFault { at_ms: 7000, fault: Fault::SlowFsync { tablet: 0, dur_ms: 1000 } },
            TimedFault { at_ms: 8000, fault: Fault::WriteError { tablet: 1, dur_ms: 1000 } },
            TimedFault {
                at_ms: 8000,
                fault: Fault::CorruptTail { replica: Replica::Tablet(2), then: Then::Nothing, after_ms: 0 },
            },
            TimedFault { at_ms: 8500, fault: Fault::Network { loss_pct: 5, latency_ms: 80, dur_ms: 1000 } },
            TimedFault { at_ms: 8600, fault: Fault::MakeSnapshot { pid: 9 } },
        ];
        let c = case(faults);
        let text = c.to_toml("all faults");
        let s = mldb_sim::scenario::parse_str(&text, "case.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let verbs: Vec<&str> = s.steps.iter().map(|st| st.action.verb()).collect();
        for verb in [
            "ns_client",
            "crash",
            "start",
            "restart",
            "machine_restart",
            "partition",
            "isolate",
            "isolate_from_coord",
            "clog",
            "pause",
            "resume",
            "disk_fault",
            "heal",
            "recoverdata",
            "network",
        ] {
            assert!(verbs.contains(&verb), "{verb} missing: {verbs:?}");
        }
        // Steps are in time order, and the tablet index wrapped around the shape (tablet 4 of 3 is tablet-2).
        assert!(text.contains("target = \"tablet-2\""));
        assert_eq!(c.last_step_ms(), 9000 + 3000);
        assert!(text.contains("replication = \"semisync\""));
        // The snapshot's partition wraps around the table's 2 partitions.
        assert!(text.contains("cmd = \"makesnapshot fuzz 1\""), "{text}");
    }

    fn parsed(c: &FuzzCase) -> (String, mldb_sim::scenario::Scenario) {
        let text = c.to_toml("case");
        let s = mldb_sim::scenario::parse_str(&text, "case.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, s)
    }

    #[test]
    fn coordination_pauses_are_relative_to_the_session_timeout() {
        let mut c = case(vec![
            TimedFault { at_ms: 2000, fault: Fault::PauseCoord { permille: 500 } },
            TimedFault { at_ms: 10_000, fault: Fault::PauseCoord { permille: 1500 } },
        ]);
        c.flags.zk_session_timeout = 3000;
        let (text, _) = parsed(&c);
        assert!(text.contains("at = \"3500ms\"\ndo = \"resume\"\ntarget = \"coord\""), "{text}");
        assert!(text.contains("at = \"14500ms\"\ndo = \"resume\"\ntarget = \"coord\""), "{text}");
    }

    #[test]
    fn the_coordination_server_goes_down_three_ways_for_a_share_of_the_session_timeout() {
        let mut c = case(vec![
            TimedFault { at_ms: 2000, fault: Fault::CoordDown { how: CoordDown::Crash, permille: 500 } },
            TimedFault { at_ms: 10_000, fault: Fault::CoordDown { how: CoordDown::PowerLoss, permille: 1500 } },
            TimedFault { at_ms: 20_000, fault: Fault::CoordDown { how: CoordDown::Restart, permille: 700 } },
        ]);
        c.flags.zk_session_timeout = 2000;
        let (text, _) = parsed(&c);
        for step in [
            "at = \"2000ms\"\ndo = \"crash\"\ntarget = \"coord\"",
            "at = \"3000ms\"\ndo = \"start\"\ntarget = \"coord\"",
            "at = \"10000ms\"\ndo = \"machine_restart\"\ntarget = \"machine(coord)\"",
            "at = \"13000ms\"\ndo = \"start\"\ntarget = \"machine(coord)\"",
            "at = \"20000ms\"\ndo = \"restart\"\ntarget = \"coord\"",
        ] {
            assert!(text.contains(step), "{step} missing from\n{text}");
        }
    }

    #[test]
    fn no_coordination_pause_overlaps_a_role_target() {
        let mut c = case(vec![
            TimedFault { at_ms: 2000, fault: Fault::PauseCoord { permille: 1500 } },
            TimedFault {
                at_ms: 4000,
                fault: Fault::CorruptTail { replica: Replica::Leader(0), then: Then::Nothing, after_ms: 0 },
            },
        ]);
        let (text, _) = parsed(&c);
        assert!(!text.contains("target = \"coord\""), "{text}");
        // A pause that ends before the role target runs stays.
        c.faults[0].fault = Fault::PauseCoord { permille: 900 };
        let (text, _) = parsed(&c);
        assert!(text.contains("at = \"3800ms\"\ndo = \"resume\"\ntarget = \"coord\""), "{text}");
    }

    #[test]
    fn clogs_with_the_coordination_server_go_either_way() {
        let c = case(vec![
            TimedFault { at_ms: 2000, fault: Fault::ClogCoord { p: Proc::Tablet(1), to_coord: true, dur_ms: 900 } },
            TimedFault {
                at_ms: 4000,
                fault: Fault::ClogCoord { p: Proc::Nameserver(0), to_coord: false, dur_ms: 900 },
            },
        ]);
        let (text, s) = parsed(&c);
        assert!(text.contains("do = \"clog\"\nfrom = \"tablet-2\"\nto = \"coord\""), "{text}");
        assert!(text.contains("do = \"clog\"\nfrom = \"coord\"\nto = \"nameserver-1\""), "{text}");
        assert_eq!(s.steps.iter().filter(|st| st.action.verb() == "heal").count(), 2);
    }

    #[test]
    fn nameserver_cuts_leave_the_coordination_server_out_of_both_groups() {
        let mut c = case(vec![
            TimedFault { at_ms: 2000, fault: Fault::NsCut { ns_mask: 0, tablet_mask: 0b110, dur_ms: 900 } },
            TimedFault { at_ms: 4000, fault: Fault::NsCut { ns_mask: 0b10, tablet_mask: 0, dur_ms: 900 } },
        ]);
        c.shape.nameservers = 3;
        let (text, s) = parsed(&c);
        assert!(
            text.contains(
                "groups = [[\"nameserver-1\", \"nameserver-2\", \"nameserver-3\"], [\"tablet-2\", \"tablet-3\"]]"
            ),
            "{text}"
        );
        assert!(text.contains("groups = [[\"nameserver-2\"], [\"tablet-1\"]]"), "{text}");
        let partitions = s.steps.iter().filter(|st| st.action.verb() == "partition").count();
        assert_eq!(partitions, 2);
        assert!(!text.contains("\"coord\""), "{text}");
    }

    #[test]
    fn corrupt_tail_on_a_leader_then_another_replica_restarts() {
        let c = case(vec![TimedFault {
            at_ms: 2000,
            fault: Fault::CorruptTail { replica: Replica::Leader(3), then: Then::Restart, after_ms: 1000 },
        }]);
        let (text, s) = parsed(&c);
        // The pid wraps around the 2 partitions; the damaged file is that partition's binlog.
        assert!(text.contains("at = \"2000ms\"\ndo = \"crash\"\ntarget = \"leader(fuzz,1)\""), "{text}");
        assert!(
            text.contains(
                "do = \"disk_fault\"\ntarget = \"leader(fuzz,1)\"\nkind = \"corrupt_tail\"\npath = \"1_1/binlog/00000000.log\""
            ),
            "{text}"
        );
        assert!(text.contains("at = \"2500ms\"\ndo = \"start\"\ntarget = \"leader(fuzz,1)\""), "{text}");
        assert!(text.contains("at = \"3500ms\"\ndo = \"restart\"\ntarget = \"follower(fuzz,1)\""), "{text}");
        let verbs: Vec<&str> = s.steps.iter().map(|st| st.action.verb()).collect();
        assert_eq!(verbs[verbs.len() - 4..], ["crash", "disk_fault", "start", "restart"]);
    }

    #[test]
    fn corrupt_tail_on_a_follower_then_its_leader_crashes_under_a_daemon() {
        let mut c = case(vec![TimedFault {
            at_ms: 2000,
            fault: Fault::CorruptTail { replica: Replica::Follower(0), then: Then::Crash, after_ms: 0 },
        }]);
        c.shape.daemon = true;
        let (text, _) = parsed(&c);
        assert!(text.contains("do = \"crash\"\ntarget = \"follower(fuzz,0)\""), "{text}");
        assert!(text.contains("at = \"2500ms\"\ndo = \"crash\"\ntarget = \"leader(fuzz,0)\""), "{text}");
        // Without a daemon nothing would start the crashed leader again: it is restarted instead.
        c.shape.daemon = false;
        let (text, _) = parsed(&c);
        assert!(text.contains("at = \"2500ms\"\ndo = \"restart\"\ntarget = \"leader(fuzz,0)\""), "{text}");
    }

    #[test]
    fn corrupt_tail_of_a_single_replica_table_touches_no_other_replica() {
        let mut c = case(vec![TimedFault {
            at_ms: 2000,
            fault: Fault::CorruptTail { replica: Replica::Follower(0), then: Then::Restart, after_ms: 0 },
        }]);
        c.shape.replicas = 1;
        c.shape.semisync = false;
        let (text, s) = parsed(&c);
        assert!(text.contains("do = \"crash\"\ntarget = \"leader(fuzz,0)\""), "{text}");
        assert!(!text.contains("follower("), "{text}");
        assert!(!s.steps.iter().any(|st| st.action.verb() == "restart"), "{text}");
        // A tablet target restarts the next tablet.
        c.faults[0].fault = Fault::CorruptTail { replica: Replica::Tablet(2), then: Then::Restart, after_ms: 0 };
        let (text, _) = parsed(&c);
        assert!(text.contains("do = \"restart\"\ntarget = \"tablet-1\""), "{text}");
    }

    #[test]
    fn a_shape_without_taskmanagers_faults_a_tablet_and_submits_no_import() {
        let mut c = case(vec![TimedFault { at_ms: 2000, fault: Fault::Crash(Proc::Taskmanager(0)) }]);
        c.shape.taskmanagers = 0;
        c.shape.replicas = 9;
        let text = c.to_toml("no tm");
        let s = mldb_sim::scenario::parse_str(&text, "case.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!text.contains("submitjob"));
        assert!(text.contains("target = \"tablet-1\""));
        assert_eq!(s.tables[0].replicas, Some(3));
    }
}
