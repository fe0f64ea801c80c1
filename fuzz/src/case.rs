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
    PauseCoord {
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
    /// Crash a tablet, damage the tail of its newest binlog, start it again.
    CorruptTail {
        tablet: u8,
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
        if let (Some(rows), true) = (self.load.import_rows, self.shape.taskmanagers > 0) {
            add(1000, format!("do = \"ns_client\"\ncmd = \"submitjob import {IMPORT_TABLE} gen:{rows}\"\n"));
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
                Fault::PauseCoord { dur_ms } => {
                    add(at, "do = \"pause\"\ntarget = \"coord\"\n".into());
                    add(at + dur_ms, "do = \"resume\"\ntarget = \"coord\"\n".into());
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
                Fault::CorruptTail { tablet } => {
                    let name = self.tablet(*tablet);
                    add(at, format!("do = \"crash\"\ntarget = \"{name}\"\n"));
                    add(at, format!("do = \"disk_fault\"\ntarget = \"{name}\"\nkind = \"corrupt_tail\"\n"));
                    add(at + 500, format!("do = \"start\"\ntarget = \"{name}\"\n"));
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
        let replicas = s.replicas.clamp(1, s.tablets.min(3) as u32);
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
            TimedFault { at_ms: 7000, fault: Fault::PauseCoord { dur_ms: 500 } },
            TimedFault { at_ms: 7000, fault: Fault::SlowFsync { tablet: 0, dur_ms: 1000 } },
            TimedFault { at_ms: 8000, fault: Fault::WriteError { tablet: 1, dur_ms: 1000 } },
            TimedFault { at_ms: 8000, fault: Fault::CorruptTail { tablet: 2 } },
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
