//! From the TOML tree to a [`Scenario`]: every key read, every value checked against the rest of the file.
//!
//! Sections are read in dependency order (cluster and tables before the workloads and steps that refer to them),
//! and the first problem found is the error.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ScenarioError;
use super::duration::format_duration;
use super::flags::{FlagKind, KNOWN_FLAGS, flag_spec};
use super::model::*;
use super::read::{Table, Val, suggest};
use super::target::{Command, ProcessId, ProcessTarget, Target, valid_table_name};

const TOP_KEYS: &[&str] =
    &["name", "description", "seeds", "duration", "cluster", "flags", "table", "workload", "step", "expect"];
const CLUSTER_KEYS: &[&str] = &["tablets", "nameservers", "taskmanagers", "daemon", "machines"];
const TABLE_KEYS: &[&str] = &["name", "partitions", "replicas", "replication"];
const WORKLOAD_KEYS: &[&str] = &["kind", "table", "rate", "start", "stop"];
const EXPECT_KEYS: &[&str] = &["loss", "service", "recovery", "converge_within", "failover_within"];
/// Keys every step may have, whatever its verb.
const STEP_KEYS: &[&str] = &["at", "after", "wait", "do"];
const CLIENT_EXPECT: &[&str] = &["expect_contains", "expect_not_contains", "expect_ok"];

/// Defaults the file may leave out.
const DEFAULT_SEEDS: i64 = 10;
const DEFAULT_DURATION: Duration = Duration::from_secs(120);
const DEFAULT_PARTITIONS: i64 = 8;
const DEFAULT_SLOW_FSYNC: Duration = Duration::from_secs(1);
const DEFAULT_CORRUPT_BYTES: i64 = 4;

/// Bounds: every machine owns one 10.0.m.0/24 block (m a byte, the coordination server's machine included), and
/// 254 process addresses.
const MAX_OF_A_ROLE: i64 = 200;
const MAX_PROCESSES_PER_MACHINE: usize = 254;
const MAX_PARTITIONS: i64 = 1024;

/// One step verb: the keys it requires and may have besides [`STEP_KEYS`].
struct Verb {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

const fn verb(name: &'static str, required: &'static [&'static str], optional: &'static [&'static str]) -> Verb {
    Verb { name, required, optional }
}

const VERBS: &[Verb] = &[
    verb("crash", &["target"], &[]),
    verb("restart", &["target"], &[]),
    verb("machine_restart", &["target"], &[]),
    verb("start", &["target"], &[]),
    verb("partition", &["groups"], &[]),
    verb("isolate", &["target"], &[]),
    verb("isolate_from_coord", &["target"], &[]),
    verb("heal", &[], &[]),
    verb("network", &[], &["loss", "latency"]),
    verb("clog", &["from", "to"], &[]),
    verb("pause", &["target"], &[]),
    verb("resume", &["target"], &[]),
    verb("disk_fault", &["target", "kind"], &["delay", "path", "bytes"]),
    verb("ns_client", &["cmd"], CLIENT_EXPECT),
    verb("tablet_client", &["target", "cmd"], CLIENT_EXPECT),
    verb("recoverdata", &[], CLIENT_EXPECT),
    verb("wait_until", &["condition", "timeout"], &[]),
    verb("stop_writes", &[], &[]),
];

/// Every key some step may have.
fn all_step_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = STEP_KEYS.to_vec();
    for v in VERBS {
        for k in v.required.iter().chain(v.optional) {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys
}

fn verb_names() -> String {
    VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn missing(t: &Table<'_>, key: &str, what: &str) -> ScenarioError {
    t.doc.err(&t.key_path(key), t.span.clone(), format!("missing; {what}"))
}

fn as_usize(n: i64) -> usize {
    usize::try_from(n).expect("range-checked non-negative")
}

fn as_u32(n: i64) -> u32 {
    u32::try_from(n).expect("range-checked to fit u32")
}

/// Builds the scenario from the file's root table.
pub(crate) fn scenario(root: &Table<'_>) -> Result<Scenario, ScenarioError> {
    root.check_keys(TOP_KEYS, "a scenario")?;
    let name_val =
        root.get("name").ok_or_else(|| root.doc.err("name", None, "missing; every scenario needs a name"))?;
    let name = name_val.str()?;
    if name.trim().is_empty() {
        return Err(name_val.err("must not be empty"));
    }
    let description = root.opt("description", |v| v.str())?.unwrap_or("").to_string();
    let seeds = as_u32(root.opt("seeds", |v| v.int_in(1, i64::from(u32::MAX)))?.unwrap_or(DEFAULT_SEEDS));
    let duration = root
        .opt("duration", |v| {
            let d = v.duration()?;
            if d.is_zero() { Err(v.err("must be longer than 0s")) } else { Ok(d) }
        })?
        .unwrap_or(DEFAULT_DURATION);
    let cluster = match root.get("cluster") {
        Some(v) => cluster(&v.table()?)?,
        None => Cluster::default(),
    };
    let flags = match root.get("flags") {
        Some(v) => flags(&v.table()?)?,
        None => Vec::new(),
    };
    let mut tables: Vec<TableSpec> = Vec::new();
    let mut table_lines: BTreeMap<String, usize> = BTreeMap::new();
    for t in root.opt("table", Val::tables)?.unwrap_or_default() {
        let spec = table(&t, &cluster)?;
        let line = t.span.as_ref().map_or(0, |s| t.doc.line(s.start));
        if let Some(first) = table_lines.insert(spec.name.clone(), line) {
            return Err(t
                .get("name")
                .expect("read")
                .err(format!("table {} is declared twice (first at line {first})", spec.name)));
        }
        tables.push(spec);
    }
    let world = World { cluster: &cluster, tables: &tables };
    let workloads = root
        .opt("workload", Val::tables)?
        .unwrap_or_default()
        .iter()
        .map(|t| workload(t, &world, duration))
        .collect::<Result<Vec<_>, _>>()?;
    let steps = root
        .opt("step", Val::tables)?
        .unwrap_or_default()
        .iter()
        .map(|t| step(t, &world, duration))
        .collect::<Result<Vec<_>, _>>()?;
    let expect = match root.get("expect") {
        Some(v) => expect(&v.table()?)?,
        None => Expect::default(),
    };
    Ok(Scenario {
        name: name.to_string(),
        description,
        seeds,
        duration,
        cluster,
        flags,
        tables,
        workloads,
        steps,
        expect,
    })
}

fn cluster(t: &Table<'_>) -> Result<Cluster, ScenarioError> {
    t.check_keys(CLUSTER_KEYS, "[cluster]")?;
    let count = |key: &str, min: i64, default: usize| -> Result<usize, ScenarioError> {
        Ok(t.opt(key, |v| v.int_in(min, MAX_OF_A_ROLE))?.map_or(default, as_usize))
    };
    let tablets = count("tablets", 1, 3)?;
    let nameservers = count("nameservers", 1, 2)?;
    let taskmanagers = count("taskmanagers", 0, 2)?;
    let machines = count("machines", 1, tablets)?;
    let daemon = t.opt("daemon", Val::bool)?.unwrap_or(true);
    let busiest = tablets.div_ceil(machines) + nameservers.div_ceil(machines) + taskmanagers.div_ceil(machines);
    if busiest > MAX_PROCESSES_PER_MACHINE {
        let msg = format!(
            "{} would place {busiest} processes on one machine, at most {MAX_PROCESSES_PER_MACHINE} fit",
            plural(machines, "machine")
        );
        return Err(match t.get("machines") {
            Some(v) => v.err(msg),
            None => t.err(msg),
        });
    }
    Ok(Cluster { tablets, nameservers, taskmanagers, daemon, machines })
}

fn flags(t: &Table<'_>) -> Result<Vec<(String, FlagValue)>, ScenarioError> {
    let mut out = Vec::new();
    for (key, key_span, v) in t.entries() {
        let Some(spec) = flag_spec(key) else {
            let hint = suggest(key, KNOWN_FLAGS.iter().map(|f| f.name))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let known: Vec<&str> = KNOWN_FLAGS.iter().map(|f| f.name).collect();
            return Err(t.doc.err(
                &t.key_path(key),
                Some(key_span),
                format!("unknown flag `{key}`{hint}; known flags: {}", known.join(", ")),
            ));
        };
        let value = match spec.kind {
            FlagKind::Bool => FlagValue::Bool(v.bool()?),
            FlagKind::Int { min } => {
                let min = i64::try_from(min).unwrap_or(i64::MAX);
                FlagValue::Int(u64::try_from(v.int_in(min, i64::MAX)?).expect("range-checked non-negative"))
            }
            FlagKind::String => FlagValue::Str(v.str()?.to_string()),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn table(t: &Table<'_>, cluster: &Cluster) -> Result<TableSpec, ScenarioError> {
    t.check_keys(TABLE_KEYS, "[[table]]")?;
    let name_val = t.get("name").ok_or_else(|| missing(t, "name", "every table needs a name"))?;
    let name = name_val.str()?;
    if !valid_table_name(name) {
        return Err(name_val.err(format!("bad table name {name:?}: letters, digits and _ only (OpenMLDB's rule)")));
    }
    let partitions = as_u32(t.opt("partitions", |v| v.int_in(1, MAX_PARTITIONS))?.unwrap_or(DEFAULT_PARTITIONS));
    let replicas = t.opt("replicas", |v| {
        let n = v.int()?;
        if n < 1 {
            return Err(v.err(format!("replicas {n}: a partition needs at least 1 replica")));
        }
        if n > i64::try_from(cluster.tablets).unwrap_or(i64::MAX) {
            return Err(v.err(format!(
                "replicas {n} > tablets {}: every replica of a partition lives on its own tablet",
                cluster.tablets
            )));
        }
        Ok(as_u32(n))
    })?;
    let replication =
        t.opt("replication", |v| v.one_of(&[("async", Replication::Async), ("semisync", Replication::Semisync)]))?;
    let spec = TableSpec { name: name.to_string(), partitions, replicas, replication: replication.unwrap_or_default() };
    if spec.replication == Replication::Semisync && spec.replica_count(cluster) < 2 {
        let v = t.get("replication").expect("semisync was read from it");
        return Err(v.err(format!(
            "semisync needs a follower to acknowledge a write, and table {name} has {}",
            plural(usize::try_from(spec.replica_count(cluster)).unwrap_or(0), "replica")
        )));
    }
    Ok(spec)
}

/// What targets may name.
struct World<'s> {
    cluster: &'s Cluster,
    tables: &'s [TableSpec],
}

impl World<'_> {
    /// Why a declared table of that name does not exist, if it does not.
    fn table(&self, name: &str) -> Result<&TableSpec, String> {
        self.tables.iter().find(|t| t.name == name).ok_or_else(|| {
            let declared: Vec<&str> = self.tables.iter().map(|t| t.name.as_str()).collect();
            if declared.is_empty() {
                format!("no table {name} is declared (the file has no [[table]])")
            } else {
                format!("no table {name} is declared (tables: {})", declared.join(", "))
            }
        })
    }

    /// Why a process target names nothing in this scenario, if it does.
    fn check(&self, target: &ProcessTarget) -> Result<(), String> {
        let c = self.cluster;
        match target {
            ProcessTarget::Process(p) => {
                let count = match p {
                    ProcessId::Coord => return Ok(()),
                    ProcessId::Tablet(_) => c.tablets,
                    ProcessId::Nameserver(_) => c.nameservers,
                    ProcessId::Taskmanager(_) => c.taskmanagers,
                };
                if p.index() == 0 {
                    Err(format!("{}s are numbered from 1", p.role()))
                } else if c.has(*p) {
                    Ok(())
                } else {
                    Err(format!("the cluster has {}", plural(count, p.role())))
                }
            }
            ProcessTarget::ActiveNameserver => Ok(()),
            ProcessTarget::StandbyNameserver if c.nameservers < 2 => {
                Err(format!("the cluster has {}", plural(c.nameservers, "nameserver")))
            }
            ProcessTarget::StandbyNameserver => Ok(()),
            ProcessTarget::ActiveTaskmanager if c.taskmanagers == 0 => Err("the cluster has 0 taskmanagers".into()),
            ProcessTarget::ActiveTaskmanager => Ok(()),
            ProcessTarget::Leader(part) | ProcessTarget::Follower(part) => {
                let t = self.table(&part.table)?;
                if part.pid >= t.partitions {
                    let pids =
                        if t.partitions == 1 { "pid 0".to_string() } else { format!("pids 0 to {}", t.partitions - 1) };
                    return Err(format!("table {} has {}, {pids}", t.name, plural(t.partitions as usize, "partition")));
                }
                if matches!(target, ProcessTarget::Follower(_)) && t.replica_count(c) < 2 {
                    return Err(format!("table {} has 1 replica, so no follower", t.name));
                }
                Ok(())
            }
        }
    }

    /// The processes a target certainly stands for, when known before the run (for overlap checks).
    fn static_processes(&self, target: &Target) -> Vec<ProcessId> {
        match target {
            Target::Process(ProcessTarget::Process(p)) => vec![*p],
            Target::Machine(ProcessTarget::Process(p)) => self.cluster.processes_on(self.cluster.machine_of(*p)),
            _ => Vec::new(),
        }
    }
}

/// A target of any form that names something.
fn target(v: &Val<'_>, world: &World<'_>) -> Result<Target, ScenarioError> {
    let text = v.str()?;
    let target = Target::parse(text).map_err(|e| v.err(e))?;
    world.check(target.process()).map_err(|why| v.err(format!("target {target} names nothing: {why}")))?;
    Ok(target)
}

/// A process target that names something; `verb` explains why a machine will not do.
fn process_target(v: &Val<'_>, world: &World<'_>, verb: &str) -> Result<ProcessTarget, ScenarioError> {
    match target(v, world)? {
        Target::Process(p) => Ok(p),
        m @ Target::Machine(_) => Err(v.err(format!("{verb} takes a process, not a machine such as {m}"))),
    }
}

fn workload(t: &Table<'_>, world: &World<'_>, duration: Duration) -> Result<Workload, ScenarioError> {
    t.check_keys(WORKLOAD_KEYS, "[[workload]]")?;
    let kind = t.get("kind").ok_or_else(|| missing(t, "kind", "write or read"))?;
    let kind = kind.one_of(&[("write", WorkloadKind::Write), ("read", WorkloadKind::Read)])?;
    let table = t.get("table").ok_or_else(|| missing(t, "table", "a workload runs against a declared table"))?;
    world.table(table.str()?).map_err(|e| table.err(e))?;
    let rate_val = t.get("rate").ok_or_else(|| missing(t, "rate", "operations per simulated second"))?;
    let rate = rate_val.number()?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(rate_val.err(format!("rate {rate}: must be more than 0 operations per simulated second")));
    }
    let start = t.opt("start", Val::duration)?.unwrap_or(Duration::ZERO);
    if start >= duration {
        let v = t.get("start").expect("a start at or after a positive duration is written");
        return Err(v.err(format!(
            "start {} is not before the scenario's duration {}",
            format_duration(start),
            format_duration(duration)
        )));
    }
    let stop = t.opt("stop", |v| {
        let stop = v.duration()?;
        if stop <= start {
            return Err(v.err(format!("stop {} is not after start {}", format_duration(stop), format_duration(start))));
        }
        if stop > duration {
            return Err(v.err(format!(
                "stop {} is after the scenario's duration {}",
                format_duration(stop),
                format_duration(duration)
            )));
        }
        Ok(stop)
    })?;
    Ok(Workload { kind, table: table.str()?.to_string(), rate, start, stop })
}

fn step(t: &Table<'_>, world: &World<'_>, duration: Duration) -> Result<Step, ScenarioError> {
    t.check_keys(&all_step_keys(), "a step")?;
    let line = t.span.as_ref().map_or(0, |s| t.doc.line(s.start));
    let do_val = t.get("do").ok_or_else(|| t.err(format!("missing `do`; verbs: {}", verb_names())))?;
    let verb_name = do_val.str()?;
    let Some(verb) = VERBS.iter().find(|v| v.name == verb_name) else {
        let hint = suggest(verb_name, VERBS.iter().map(|v| v.name)).map(|s| format!(" (did you mean {s:?}?)"));
        return Err(do_val.err(format!(
            "unknown verb {verb_name:?}{}; verbs: {}",
            hint.unwrap_or_default(),
            verb_names()
        )));
    };
    for (key, key_span, _) in t.entries() {
        if !STEP_KEYS.contains(&key) && !verb.required.contains(&key) && !verb.optional.contains(&key) {
            let takes: Vec<&str> = verb.required.iter().chain(verb.optional).copied().collect();
            let takes = if takes.is_empty() { "no other key".to_string() } else { takes.join(", ") };
            return Err(t.doc.err(
                &t.key_path(key),
                Some(key_span),
                format!("`{key}` does not belong to {}, which takes: {takes}", verb.name),
            ));
        }
    }
    if let Some(key) = verb.required.iter().find(|k| t.get(k).is_none()) {
        return Err(t.err(format!("{} needs `{key}`", verb.name)));
    }
    let time = step_time(t, duration)?;
    let action = action(t, verb.name, world)?;
    Ok(Step { time, action, line })
}

fn step_time(t: &Table<'_>, duration: Duration) -> Result<StepTime, ScenarioError> {
    let wait_alone = |w: Val<'_>| w.err("`wait` goes with `after = \"previous\"`; `at` is a time from the start");
    match (t.get("at"), t.get("after"), t.get("wait")) {
        (Some(_), Some(after), _) => Err(after.err("a step has `at` or `after`, not both")),
        (Some(at), None, wait) => {
            if let Some(w) = wait {
                return Err(wait_alone(w));
            }
            let d = at.duration()?;
            if d >= duration {
                return Err(at.err(format!(
                    "at {} is not before the scenario's duration {}",
                    format_duration(d),
                    format_duration(duration)
                )));
            }
            Ok(StepTime::At(d))
        }
        (None, Some(after), wait) => {
            after.one_of(&[("previous", ())])?;
            Ok(StepTime::AfterPrevious(wait.map(|w| w.duration()).transpose()?.unwrap_or(Duration::ZERO)))
        }
        (None, None, Some(w)) => Err(wait_alone(w)),
        (None, None, None) => {
            Err(t.err("missing `at` (a time from the start) or `after = \"previous\"` (with `wait`)"))
        }
    }
}

fn action(t: &Table<'_>, verb: &str, world: &World<'_>) -> Result<Action, ScenarioError> {
    let get = |key: &str| t.get(key).expect("required keys were checked");
    let process = |key: &str| process_target(&get(key), world, verb);
    Ok(match verb {
        "crash" => Action::Crash(process("target")?),
        "restart" => Action::Restart(process("target")?),
        "machine_restart" => Action::MachineRestart(target(&get("target"), world)?),
        "start" => Action::Start(target(&get("target"), world)?),
        "partition" => Action::Partition { groups: groups(&get("groups"), world)? },
        "isolate" => Action::Isolate(process("target")?),
        "isolate_from_coord" => {
            let p = process("target")?;
            if p == ProcessTarget::Process(ProcessId::Coord) {
                return Err(get("target").err("coord cannot be isolated from itself"));
            }
            Action::IsolateFromCoord(p)
        }
        "heal" => Action::Heal,
        "network" => Action::Network(network(t)?),
        "clog" => {
            let (from, to) = (process("from")?, process("to")?);
            if from == to {
                return Err(get("to").err(format!("clog from {from} to itself")));
            }
            Action::Clog { from, to }
        }
        "pause" => Action::Pause(process("target")?),
        "resume" => Action::Resume(process("target")?),
        "disk_fault" => Action::DiskFault { target: process("target")?, fault: disk_fault(t)? },
        "ns_client" => Action::NsClient { cmd: command(&get("cmd"), world)?, expect: client_expect(t)? },
        "tablet_client" => {
            let target_val = get("target");
            let target = process_target(&target_val, world, verb)?;
            let is_tablet = matches!(
                target,
                ProcessTarget::Process(ProcessId::Tablet(_)) | ProcessTarget::Leader(_) | ProcessTarget::Follower(_)
            );
            if !is_tablet {
                return Err(target_val.err(format!("tablet_client talks to a tablet, and {target} is not one")));
            }
            Action::TabletClient { target, cmd: command(&get("cmd"), world)?, expect: client_expect(t)? }
        }
        "recoverdata" => Action::Recoverdata { expect: client_expect(t)? },
        "wait_until" => {
            let condition = get("condition").one_of(&[
                ("all_alive", Condition::AllAlive),
                ("leaders_elected", Condition::LeadersElected),
                ("ops_done", Condition::OpsDone),
            ])?;
            let timeout_val = get("timeout");
            let timeout = timeout_val.duration()?;
            if timeout.is_zero() {
                return Err(timeout_val.err("must be longer than 0s"));
            }
            Action::WaitUntil { condition, timeout }
        }
        "stop_writes" => Action::StopWrites,
        other => unreachable!("verb {other} is in VERBS but not built"),
    })
}

/// `groups = [["tablet-1"], ["tablet-2", "machine(tablet-3)"]]`: at least two non-empty groups, and a process
/// named in one group is not named in another.
fn groups(v: &Val<'_>, world: &World<'_>) -> Result<Vec<Vec<Target>>, ScenarioError> {
    let mut groups = Vec::new();
    let mut seen: BTreeMap<ProcessId, usize> = BTreeMap::new();
    let items = v.array()?;
    if items.len() < 2 {
        return Err(v.err(format!("a partition needs at least 2 groups, found {}", items.len())));
    }
    for (gi, g) in items.iter().enumerate() {
        let members = g.array()?;
        if members.is_empty() {
            return Err(g.err("an empty group"));
        }
        let mut group = Vec::new();
        for m in &members {
            let t = target(m, world)?;
            for p in world.static_processes(&t) {
                if let Some(other) = seen.insert(p, gi).filter(|&other| other != gi) {
                    return Err(m.err(format!("{p} is in group {other} and group {gi}")));
                }
            }
            group.push(t);
        }
        groups.push(group);
    }
    Ok(groups)
}

fn command(v: &Val<'_>, world: &World<'_>) -> Result<Command, ScenarioError> {
    let text = v.str()?;
    if text.trim().is_empty() {
        return Err(v.err("an empty command"));
    }
    let cmd = Command::parse(text).map_err(|e| v.err(e))?;
    for target in cmd.targets() {
        world.check(target).map_err(|why| v.err(format!("placeholder {{{target}}} names nothing: {why}")))?;
    }
    Ok(cmd)
}

fn client_expect(t: &Table<'_>) -> Result<ClientExpect, ScenarioError> {
    Ok(ClientExpect {
        contains: t.opt("expect_contains", Val::strings)?.unwrap_or_default(),
        not_contains: t.opt("expect_not_contains", Val::strings)?.unwrap_or_default(),
        ok: t.opt("expect_ok", Val::bool)?,
    })
}

/// The most loss a `network` step may ask for: beyond it nothing connects and the run says nothing.
const MAX_LOSS: f64 = 0.9;
/// The longest one-way latency a `network` step may ask for.
const MAX_LATENCY: Duration = Duration::from_secs(10);

/// `loss = 0.05` (a probability) and/or `latency = "20ms..80ms"` (or one duration: fixed); what is left out keeps
/// its default (no loss, 1ms..10ms).
fn network(t: &Table<'_>) -> Result<NetworkConditions, ScenarioError> {
    if t.get("loss").is_none() && t.get("latency").is_none() {
        return Err(t.err("network needs `loss`, `latency` or both (heal restores the defaults)"));
    }
    let mut c = NetworkConditions::DEFAULT;
    if let Some(loss) = t.opt("loss", |v| {
        let x = v.number()?;
        if !(0.0..=MAX_LOSS).contains(&x) {
            return Err(v.err(format!("loss is a probability from 0 to {MAX_LOSS}, not {x}")));
        }
        Ok(x)
    })? {
        c.loss_ppm = (loss * 1e6).round() as u32;
    }
    if let Some((min, max)) = t.opt("latency", |v| {
        let text = v.str()?;
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let parse = |s: &str| {
            super::duration::parse_duration(s.trim())
                .map_err(|e| v.err(format!("latency {text:?}: {e} (write \"20ms..80ms\" or one duration)")))
        };
        let (min, max) = (parse(a)?, parse(b)?);
        if min > max {
            return Err(v.err(format!("latency {text:?}: the minimum is above the maximum")));
        }
        if max > MAX_LATENCY {
            return Err(v.err(format!("latency {text:?}: at most {} one way", format_duration(MAX_LATENCY))));
        }
        Ok((min, max))
    })? {
        (c.latency_min, c.latency_max) = (min, max);
    }
    Ok(c)
}

fn disk_fault(t: &Table<'_>) -> Result<DiskFault, ScenarioError> {
    let kind_val = t.get("kind").expect("required");
    let kind = kind_val.one_of(&[
        ("slow_fsync", "slow_fsync"),
        ("write_error", "write_error"),
        ("corrupt_tail", "corrupt_tail"),
        ("clear", "clear"),
    ])?;
    for (key, owner) in [("delay", "slow_fsync"), ("path", "corrupt_tail"), ("bytes", "corrupt_tail")] {
        if kind != owner
            && let Some(v) = t.get(key)
        {
            let span = t.key_span(key).unwrap_or(v.span);
            return Err(t.doc.err(&v.path, Some(span), format!("`{key}` belongs to kind {owner} only, not {kind}")));
        }
    }
    Ok(match kind {
        "slow_fsync" => DiskFault::SlowFsync {
            delay: t
                .opt("delay", |v| {
                    let d = v.duration()?;
                    if d.is_zero() {
                        Err(v.err("must be longer than 0s (kind = \"clear\" removes faults)"))
                    } else {
                        Ok(d)
                    }
                })?
                .unwrap_or(DEFAULT_SLOW_FSYNC),
        },
        "write_error" => DiskFault::WriteError,
        "corrupt_tail" => DiskFault::CorruptTail {
            path: t.opt("path", |v| {
                let p = v.str()?;
                let escapes = p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..");
                if escapes {
                    return Err(v.err(format!(
                        "path {p:?} must be relative to the process's data directory and stay inside it"
                    )));
                }
                Ok(p.to_string())
            })?,
            bytes: u64::try_from(t.opt("bytes", |v| v.int_in(1, 1 << 20))?.unwrap_or(DEFAULT_CORRUPT_BYTES))
                .expect("range-checked positive"),
        },
        _ => DiskFault::Clear,
    })
}

fn expect(t: &Table<'_>) -> Result<Expect, ScenarioError> {
    t.check_keys(EXPECT_KEYS, "[expect]")?;
    Ok(Expect {
        loss: t.opt("loss", |v| v.one_of(&[("none", Loss::None), ("bounded", Loss::Bounded), ("any", Loss::Any)]))?,
        service: t.opt("service", |v| {
            v.one_of(&[("available", Service::Available), ("unavailable", Service::Unavailable)])
        })?,
        recovery: t.opt("recovery", |v| {
            v.one_of(&[("auto", Recovery::Auto), ("manual", Recovery::Manual), ("none", Recovery::None)])
        })?,
        converge_within: t.opt("converge_within", Val::duration)?,
        failover_within: t.opt("failover_within", Val::duration)?,
    })
}
