//! Scenario files: the DESIGN 7 example, every verb, defaults, and one test per class of error with its exact
//! message (file, line, key path, what is wrong).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const DESIGN_EXAMPLE: &str = include_str!("../../tests/scenario_files/design_example.toml");
const EVERY_VERB: &str = include_str!("../../tests/scenario_files/every_verb.toml");

fn files_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenario_files")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tablet(i: usize) -> ProcessTarget {
    ProcessTarget::Process(ProcessId::Tablet(i))
}

fn leader(table: &str, pid: u32) -> ProcessTarget {
    ProcessTarget::Leader(PartitionRef { table: table.into(), pid })
}

/// The 1-based line of the `n`-th (0-based) `[[step]]` header.
fn step_line(src: &str, n: usize) -> usize {
    src.lines().enumerate().filter(|(_, l)| l.trim() == "[[step]]").nth(n).expect("that many steps").0 + 1
}

/// The error message for a file named `t.toml`.
fn err(src: &str) -> String {
    match parse_str(src, "t.toml") {
        Ok(s) => panic!("expected an error, parsed {s:#?}"),
        Err(e) => e.to_string(),
    }
}

/// A valid start (lines 1-6) that steps and workloads can be appended to; they begin on line 7.
const BASE: &str = "name = \"t\"\n\n[[table]]\nname = \"flow\"\npartitions = 2\n\n";

fn with_base(rest: &str) -> String {
    format!("{BASE}{rest}")
}

#[test]
fn design_example_parses_with_every_value() {
    let s = parse_str(DESIGN_EXAMPLE, "design_example.toml").unwrap();
    let want = Scenario {
        name: "leader crash under writes".into(),
        description: "One tablet holding leaders crashes while writes flow; daemon restarts it.".into(),
        seeds: 20,
        duration: secs(120),
        cluster: Cluster { tablets: 3, nameservers: 2, taskmanagers: 2, daemon: true, machines: 3 },
        flags: vec![
            ("auto_failover".into(), FlagValue::Bool(true)),
            ("zk_session_timeout".into(), FlagValue::Int(2000)),
            ("tablet_heartbeat_timeout".into(), FlagValue::Int(1000)),
        ],
        tables: vec![TableSpec {
            name: "flow".into(),
            partitions: 2,
            replicas: Some(3),
            replication: Replication::Async,
        }],
        workloads: vec![Workload {
            kind: WorkloadKind::Write,
            table: "flow".into(),
            rate: 100.0,
            start: secs(1),
            stop: Some(secs(60)),
        }],
        steps: vec![
            Step { time: StepTime::At(secs(10)), action: Action::Crash(leader("flow", 0)), line: 30 },
            Step {
                time: StepTime::At(secs(30)),
                action: Action::NsClient {
                    cmd: Command { text: "showtable flow".into(), parts: vec![CmdPart::Text("showtable flow".into())] },
                    expect: ClientExpect { contains: vec!["is_alive".into()], not_contains: vec![], ok: None },
                },
                line: 35,
            },
        ],
        expect: Expect {
            loss: Some(Loss::Bounded),
            service: Some(Service::Available),
            recovery: Some(Recovery::Auto),
            converge_within: Some(secs(60)),
            failover_within: None,
        },
    };
    assert_eq!(s, want);
    assert_eq!(s.steps[0].line, step_line(DESIGN_EXAMPLE, 0));
    assert_eq!(s.steps[1].line, step_line(DESIGN_EXAMPLE, 1));
    assert_eq!(s.flag("auto_failover"), Some(&FlagValue::Bool(true)));
    assert_eq!(s.table("flow").map(|t| t.replica_count(&s.cluster)), Some(3));
}

#[test]
fn every_verb_parses() {
    let s = parse_str(EVERY_VERB, "every_verb.toml").unwrap();
    assert_eq!(s.seeds, 3);
    assert_eq!(s.duration, secs(600));
    assert_eq!(s.cluster, Cluster { tablets: 3, nameservers: 2, taskmanagers: 1, daemon: false, machines: 3 });
    // File order, not alphabetical.
    let flag_names: Vec<&str> = s.flags.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(flag_names, ["zk_session_timeout", "auto_failover", "restart_delay"]);
    assert_eq!(s.tables[1].replication, Replication::Semisync);
    assert_eq!(s.workloads[1].kind, WorkloadKind::Read);
    assert_eq!(s.workloads[1].rate, 0.5);
    assert_eq!(s.workloads[1].start, ms(500));
    assert_eq!(s.workloads[1].stop, None);
    assert_eq!(
        s.expect,
        Expect {
            loss: Some(Loss::None),
            service: Some(Service::Unavailable),
            recovery: Some(Recovery::Manual),
            converge_within: None,
            failover_within: None
        }
    );

    let machine2 = Target::Machine(tablet(2));
    let want = vec![
        (StepTime::At(secs(1)), Action::Crash(tablet(1))),
        (StepTime::AfterPrevious(secs(2)), Action::Restart(leader("flow", 3))),
        (StepTime::AfterPrevious(Duration::ZERO), Action::MachineRestart(machine2.clone())),
        (StepTime::At(secs(20)), Action::Start(machine2.clone())),
        (StepTime::At(secs(21)), Action::Start(Target::Process(ProcessTarget::Process(ProcessId::Nameserver(2))))),
        (
            StepTime::At(secs(90)),
            Action::Partition {
                groups: vec![
                    vec![Target::Process(tablet(1)), Target::Process(ProcessTarget::Process(ProcessId::Nameserver(1)))],
                    vec![machine2],
                    vec![Target::Process(ProcessTarget::Process(ProcessId::Coord))],
                ],
            },
        ),
        (StepTime::At(secs(100)), Action::Isolate(ProcessTarget::ActiveNameserver)),
        (
            StepTime::At(secs(101)),
            Action::IsolateFromCoord(ProcessTarget::Follower(PartitionRef { table: "flow".into(), pid: 1 })),
        ),
        (StepTime::At(secs(102)), Action::Heal),
        (StepTime::At(secs(103)), Action::Clog { from: tablet(3), to: ProcessTarget::StandbyNameserver }),
        (StepTime::At(secs(104)), Action::Pause(ProcessTarget::Process(ProcessId::Coord))),
        (StepTime::At(secs(105)), Action::Resume(ProcessTarget::Process(ProcessId::Coord))),
        (
            StepTime::At(secs(106)),
            Action::DiskFault { target: tablet(1), fault: DiskFault::SlowFsync { delay: ms(200) } },
        ),
        (StepTime::At(secs(107)), Action::DiskFault { target: tablet(2), fault: DiskFault::WriteError }),
        (
            StepTime::At(secs(108)),
            Action::DiskFault {
                target: leader("safe", 0),
                fault: DiskFault::CorruptTail { path: Some("flow/0/binlog/00000001.log".into()), bytes: 3 },
            },
        ),
        (
            StepTime::At(secs(109)),
            Action::DiskFault { target: tablet(3), fault: DiskFault::CorruptTail { path: None, bytes: 4 } },
        ),
        (StepTime::At(secs(110)), Action::DiskFault { target: tablet(2), fault: DiskFault::Clear }),
        (
            StepTime::At(secs(111)),
            Action::NsClient {
                cmd: Command::parse("confset auto_failover false").unwrap(),
                expect: ClientExpect { ok: Some(true), ..ClientExpect::default() },
            },
        ),
        (
            StepTime::At(secs(112)),
            Action::NsClient {
                cmd: Command {
                    text: "offlineendpoint {tablet-2}".into(),
                    parts: vec![CmdPart::Text("offlineendpoint ".into()), CmdPart::Endpoint(tablet(2))],
                },
                expect: ClientExpect {
                    contains: vec!["ok".into()],
                    not_contains: vec!["failed".into(), "error".into()],
                    ok: None,
                },
            },
        ),
        (
            StepTime::At(secs(113)),
            Action::TabletClient {
                target: leader("flow", 0),
                cmd: Command::parse("gettablestatus").unwrap(),
                expect: ClientExpect { ok: Some(false), ..ClientExpect::default() },
            },
        ),
        (StepTime::At(secs(114)), Action::Recoverdata { expect: ClientExpect::default() }),
        (StepTime::At(secs(115)), Action::WaitUntil { condition: Condition::AllAlive, timeout: secs(30) }),
        (
            StepTime::AfterPrevious(Duration::ZERO),
            Action::WaitUntil { condition: Condition::LeadersElected, timeout: secs(60) },
        ),
        (
            StepTime::AfterPrevious(Duration::ZERO),
            Action::WaitUntil { condition: Condition::OpsDone, timeout: secs(90) },
        ),
        (StepTime::AfterPrevious(secs(1)), Action::StopWrites),
    ];
    assert_eq!(s.steps.len(), want.len());
    for (i, (step, (time, action))) in s.steps.iter().zip(want).enumerate() {
        assert_eq!((step.time, &step.action), (time, &action), "step[{i}]");
        assert_eq!(step.line, step_line(EVERY_VERB, i), "step[{i}] line");
    }
    let verbs: Vec<&str> = s.steps.iter().map(|s| s.action.verb()).collect();
    for v in [
        "crash",
        "restart",
        "machine_restart",
        "start",
        "partition",
        "isolate",
        "isolate_from_coord",
        "heal",
        "clog",
        "pause",
        "resume",
        "disk_fault",
        "ns_client",
        "tablet_client",
        "recoverdata",
        "wait_until",
        "stop_writes",
    ] {
        assert!(verbs.contains(&v), "{v} is not exercised");
    }
}

#[test]
fn defaults_fill_a_minimal_file() {
    let s = parse_str("name = \"x\"", "x.toml").unwrap();
    assert_eq!(s.description, "");
    assert_eq!(s.seeds, 10);
    assert_eq!(s.duration, secs(120));
    assert_eq!(s.cluster, Cluster { tablets: 3, nameservers: 2, taskmanagers: 2, daemon: true, machines: 3 });
    assert!(s.flags.is_empty() && s.tables.is_empty() && s.workloads.is_empty() && s.steps.is_empty());
    assert_eq!(s.expect, Expect::default());

    let s = parse_str("name = \"x\"\n[cluster]\ntablets = 5\n[[table]]\nname = \"t\"", "x.toml").unwrap();
    assert_eq!(s.cluster.machines, 5, "machines default to the tablets");
    let t = &s.tables[0];
    assert_eq!((t.partitions, t.replicas, t.replication), (8, None, Replication::Async));
    assert_eq!(t.replica_count(&s.cluster), 3);

    let s = parse_str("name = \"x\"\n[cluster]\ntablets = 2\n[[table]]\nname = \"t\"", "x.toml").unwrap();
    assert_eq!(s.tables[0].replica_count(&s.cluster), 2, "min(3, tablets)");
}

#[test]
fn placement_follows_design_7() {
    let c = Cluster { tablets: 3, nameservers: 2, taskmanagers: 2, daemon: true, machines: 3 };
    use ProcessId::*;
    assert_eq!(c.processes_on(MachineRef::Numbered(1)), [Tablet(1), Nameserver(1), Taskmanager(1)]);
    assert_eq!(c.processes_on(MachineRef::Numbered(3)), [Tablet(3)]);
    assert_eq!(c.processes_on(MachineRef::Coord), [Coord]);
    assert_eq!(c.machine_of(Nameserver(2)), MachineRef::Numbered(2));
    assert_eq!(c.processes().len(), 8);
    let fewer = Cluster { machines: 2, ..c };
    assert_eq!(fewer.machine_of(Tablet(3)), MachineRef::Numbered(1), "wraps around");
    assert_eq!(MachineRef::Numbered(2).to_string(), "machine-2");
}

#[test]
fn load_dir_or_files_reads_sorted_toml_files() {
    let dir = files_dir();
    let loaded = load_dir_or_files(std::slice::from_ref(&dir)).unwrap();
    let names: Vec<String> =
        loaded.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["design_example.toml", "every_verb.toml"]);
    assert_eq!(loaded[0].1.name, "leader crash under writes");

    let one = dir.join("every_verb.toml");
    let loaded = load_dir_or_files(&[one.clone(), dir.join("design_example.toml")]).unwrap();
    assert_eq!(loaded[0].0, one);
    assert_eq!(loaded[1].1.seeds, 20);

    let missing = dir.join("nope.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (None, ""));
    assert!(e.to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{e}");

    let empty = std::env::temp_dir().join(format!("mldb-scenario-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = load_dir_or_files(std::slice::from_ref(&empty)).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no *.toml scenario file in this directory", empty.display()));
    std::fs::write(empty.join("b.toml"), "name = \"b\"\nbogus = 1\n").unwrap();
    let e = load_dir_or_files(std::slice::from_ref(&empty)).unwrap_err();
    assert_eq!(e.origin, empty.join("b.toml").display().to_string());
    assert_eq!(e.line, Some(2));
    std::fs::remove_dir_all(&empty).unwrap();
}

// ---- errors: one per class, with the exact message -----------------------------------------------------------

#[test]
fn error_unknown_top_level_key() {
    assert_eq!(
        err("name = \"t\"\nseed = 5\n"),
        "t.toml:2: seed: unknown key `seed` (did you mean `seeds`?); a scenario takes: name, description, seeds, \
         duration, cluster, flags, table, workload, step, expect"
    );
    assert_eq!(
        err("name = \"t\"\n[cluster]\ntablet = 2\n"),
        "t.toml:3: cluster.tablet: unknown key `tablet` (did you mean `tablets`?); [cluster] takes: tablets, \
         nameservers, taskmanagers, daemon, machines"
    );
}

#[test]
fn error_unknown_key_in_step() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntargte = \"tablet-1\"\n")),
        "t.toml:10: step[0].targte: unknown key `targte` (did you mean `target`?); a step takes: at, after, wait, do, \
         target, groups, loss, latency, from, to, kind, delay, path, bytes, cmd, expect_contains, expect_not_contains, \
         expect_ok, condition, timeout"
    );
}

#[test]
fn error_bad_duration() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"10x\"\ndo = \"heal\"\n")),
        "t.toml:8: step[0].at: bad duration \"10x\": unknown unit \"x\"; expected a number and a unit (ms, s, m or \
         h), e.g. \"500ms\", \"10s\", \"1.5s\", \"2m\""
    );
    assert_eq!(
        err("name = \"t\"\nduration = 120\n"),
        "t.toml:2: duration: expected a duration string such as \"10s\", found integer `120`"
    );
    assert_eq!(
        err("name = \"t\"\nduration = \"2 m\"\n"),
        "t.toml:2: duration: bad duration \"2 m\": unknown unit \" m\"; expected a number and a unit (ms, s, m or \
         h), e.g. \"500ms\", \"10s\", \"1.5s\", \"2m\""
    );
}

#[test]
fn error_unknown_verb() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crsh\"\n")),
        "t.toml:9: step[0].do: unknown verb \"crsh\" (did you mean \"crash\"?); verbs: crash, restart, \
         machine_restart, start, partition, isolate, isolate_from_coord, heal, network, clog, pause, resume, \
         disk_fault, ns_client, tablet_client, recoverdata, wait_until, stop_writes"
    );
    assert!(err(&with_base("[[step]]\nat = \"1s\"\n")).starts_with("t.toml:7: step[0]: missing `do`; verbs: crash,"));
}

#[test]
fn error_missing_field_for_verb() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"clog\"\nfrom = \"tablet-1\"\n")),
        "t.toml:7: step[0]: clog needs `to`"
    );
    assert_eq!(err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\n")), "t.toml:7: step[0]: crash needs `target`");
    assert_eq!(
        err(&with_base("[[step]]\ndo = \"heal\"\n")),
        "t.toml:7: step[0]: missing `at` (a time from the start) or `after = \"previous\"` (with `wait`)"
    );
    assert_eq!(err("[cluster]\ntablets = 3\n"), "t.toml: name: missing; every scenario needs a name");
    assert_eq!(
        err(&with_base("[[workload]]\nkind = \"write\"\nrate = 10\n")),
        "t.toml:7: workload[0].table: missing; a workload runs against a declared table"
    );
}

#[test]
fn error_field_not_belonging_to_verb() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"tablet-1\"\ngroups = [[\"tablet-1\"]]\n")),
        "t.toml:11: step[0].groups: `groups` does not belong to crash, which takes: target"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"heal\"\ntarget = \"tablet-1\"\n")),
        "t.toml:10: step[0].target: `target` does not belong to heal, which takes: no other key"
    );
    assert_eq!(
        err(&with_base(
            "[[step]]\nat = \"1s\"\ndo = \"disk_fault\"\ntarget = \"tablet-1\"\nkind = \"write_error\"\ndelay = \"1s\"\n"
        )),
        "t.toml:12: step[0].delay: `delay` belongs to kind slow_fsync only, not write_error"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\nwait = \"1s\"\ndo = \"heal\"\n")),
        "t.toml:9: step[0].wait: `wait` goes with `after = \"previous\"`; `at` is a time from the start"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\nafter = \"previous\"\ndo = \"heal\"\n")),
        "t.toml:9: step[0].after: a step has `at` or `after`, not both"
    );
    assert_eq!(
        err(&with_base("[[step]]\nafter = \"prev\"\ndo = \"heal\"\n")),
        "t.toml:8: step[0].after: unknown value \"prev\"; expected one of: previous"
    );
}

#[test]
fn error_target_names_nothing() {
    let one_ns = "name = \"t\"\n[cluster]\nnameservers = 1\ntaskmanagers = 0\n\n";
    assert_eq!(
        err(&format!("{one_ns}[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"standby_nameserver\"\n")),
        "t.toml:9: step[0].target: target standby_nameserver names nothing: the cluster has 1 nameserver"
    );
    assert_eq!(
        err(&format!("{one_ns}[[step]]\nat = \"1s\"\ndo = \"pause\"\ntarget = \"active_taskmanager\"\n")),
        "t.toml:9: step[0].target: target active_taskmanager names nothing: the cluster has 0 taskmanagers"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"tablet-0\"\n")),
        "t.toml:10: step[0].target: target tablet-0 names nothing: tablets are numbered from 1"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"tablet_1\"\n")),
        "t.toml:10: step[0].target: bad target \"tablet_1\": expected tablet-N, nameserver-N, taskmanager-N, coord, \
         active_nameserver, standby_nameserver, active_taskmanager, leader(table,pid), follower(table,pid) or \
         machine(<process>)"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"machine_restart\"\ntarget = \"machine(nameserver-3)\"\n")),
        "t.toml:10: step[0].target: target machine(nameserver-3) names nothing: the cluster has 2 nameservers"
    );
    let single = "name = \"t\"\n[cluster]\ntablets = 1\n[[table]]\nname = \"flow\"\n";
    assert_eq!(
        err(&format!("{single}[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"follower(flow,0)\"\n")),
        "t.toml:9: step[0].target: target follower(flow,0) names nothing: table flow has 1 replica, so no follower"
    );
}

#[test]
fn error_out_of_range_tablet() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"tablet-4\"\n")),
        "t.toml:10: step[0].target: target tablet-4 names nothing: the cluster has 3 tablets"
    );
    assert_eq!(
        err(&with_base(
            "[[step]]\nat = \"1s\"\ndo = \"partition\"\ngroups = [[\"tablet-1\"],\n  [\"tablet-2\", \"tablet-7\"]]\n"
        )),
        "t.toml:11: step[0].groups[1][1]: target tablet-7 names nothing: the cluster has 3 tablets"
    );
}

#[test]
fn error_undeclared_table() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"leader(flux,0)\"\n")),
        "t.toml:10: step[0].target: target leader(flux,0) names nothing: no table flux is declared (tables: flow)"
    );
    assert_eq!(
        err(&with_base("[[workload]]\nkind = \"write\"\ntable = \"flux\"\nrate = 10\n")),
        "t.toml:9: workload[0].table: no table flux is declared (tables: flow)"
    );
    assert_eq!(
        err("name = \"t\"\n[[workload]]\nkind = \"read\"\ntable = \"flow\"\nrate = 10\n"),
        "t.toml:4: workload[0].table: no table flow is declared (the file has no [[table]])"
    );
}

#[test]
fn error_pid_out_of_range() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"leader(flow,2)\"\n")),
        "t.toml:10: step[0].target: target leader(flow,2) names nothing: table flow has 2 partitions, pids 0 to 1"
    );
}

#[test]
fn error_bad_placeholder() {
    let step = |cmd: &str| with_base(&format!("[[step]]\nat = \"1s\"\ndo = \"ns_client\"\ncmd = \"{cmd}\"\n"));
    assert_eq!(
        err(&step("offlineendpoint {tablet-9}")),
        "t.toml:10: step[0].cmd: placeholder {tablet-9} names nothing: the cluster has 3 tablets"
    );
    assert_eq!(
        err(&step("offlineendpoint {tablet2}")),
        "t.toml:10: step[0].cmd: placeholder {tablet2}: bad target \"tablet2\": expected tablet-N, nameserver-N, \
         taskmanager-N, coord, active_nameserver, standby_nameserver, active_taskmanager, leader(table,pid), \
         follower(table,pid) or machine(<process>)"
    );
    assert_eq!(
        err(&step("offlineendpoint {tablet-2")),
        "t.toml:10: step[0].cmd: placeholder `{` without a closing `}` in \"offlineendpoint {tablet-2\""
    );
    assert_eq!(
        err(&step("offlineendpoint {machine(tablet-2)}")),
        "t.toml:10: step[0].cmd: placeholder {machine(tablet-2)}: machine(tablet-2) is a machine, and a process is \
         needed here"
    );
}

#[test]
fn error_replicas_more_than_tablets() {
    assert_eq!(
        err("name = \"t\"\n\n[[table]]\nname = \"flow\"\nreplicas = 4\n"),
        "t.toml:5: table[0].replicas: replicas 4 > tablets 3: every replica of a partition lives on its own tablet"
    );
    assert_eq!(
        err("name = \"t\"\n[cluster]\ntablets = 1\n[[table]]\nname = \"flow\"\nreplication = \"semisync\"\n"),
        "t.toml:6: table[0].replication: semisync needs a follower to acknowledge a write, and table flow has 1 \
         replica"
    );
}

#[test]
fn error_flags() {
    assert_eq!(
        err("name = \"t\"\n[flags]\nauto_failvoer = false\n").split("; known flags:").next().unwrap(),
        "t.toml:3: flags.auto_failvoer: unknown flag `auto_failvoer` (did you mean `auto_failover`?)"
    );
    assert_eq!(
        err("name = \"t\"\n[flags]\nzk_session_timeout = \"2s\"\n"),
        "t.toml:3: flags.zk_session_timeout: expected an integer, found string `\"2s\"`"
    );
    assert_eq!(
        err("name = \"t\"\n[flags]\nauto_failover = 1\n"),
        "t.toml:3: flags.auto_failover: expected true or false, found integer `1`"
    );
    assert_eq!(
        err("name = \"t\"\n[flags]\nzk_session_timeout = 0\n"),
        "t.toml:3: flags.zk_session_timeout: 0 is too small: at least 1"
    );
}

#[test]
fn error_wrong_types_and_values() {
    assert_eq!(err("name = \"t\"\nseeds = \"ten\"\n"), "t.toml:2: seeds: expected an integer, found string `\"ten\"`");
    assert_eq!(err("name = \"t\"\nseeds = 0\n"), "t.toml:2: seeds: 0 is too small: at least 1");
    assert_eq!(
        err("name = \"t\"\nseeds = 99999999999999999999\n"),
        "t.toml:2: seeds: integer 99999999999999999999 is out of range"
    );
    assert_eq!(err("name = \"t\"\ncluster = 3\n"), "t.toml:2: cluster: expected a table, found integer `3`");
    assert_eq!(
        err("name = \"t\"\n[step]\nat = \"1s\"\n"),
        "t.toml:2: step: expected an array of tables (write [[step]]), found table `[step]`"
    );
    assert_eq!(
        err("name = \"t\"\n[expect]\nloss = \"some\"\n"),
        "t.toml:3: expect.loss: unknown value \"some\"; expected one of: none, bounded, any"
    );
    assert_eq!(err("name = \"t\"\n[cluster]\ntablets = 0\n"), "t.toml:3: cluster.tablets: 0 is too small: at least 1");
    assert_eq!(
        err("name = \"t\"\n[cluster]\nmachines = 0\n"),
        "t.toml:3: cluster.machines: 0 is too small: at least 1"
    );
    assert_eq!(
        err("name = \"t\"\n[cluster]\nnameservers = 0\n"),
        "t.toml:3: cluster.nameservers: 0 is too small: at least 1"
    );
    assert_eq!(
        err(&with_base("[[table]]\nname = \"flow\"\n")),
        "t.toml:8: table[1].name: table flow is declared twice (first at line 3)"
    );
    assert_eq!(
        err(&with_base("[[workload]]\nkind = \"write\"\ntable = \"flow\"\nrate = 0\n")),
        "t.toml:10: workload[0].rate: rate 0: must be more than 0 operations per simulated second"
    );
    assert_eq!(
        err(&with_base("[[workload]]\nkind = \"write\"\ntable = \"flow\"\nrate = 1\nstart = \"10s\"\nstop = \"5s\"\n")),
        "t.toml:12: workload[0].stop: stop 5s is not after start 10s"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"2m\"\ndo = \"heal\"\n")),
        "t.toml:8: step[0].at: at 120s is not before the scenario's duration 120s"
    );
}

#[test]
fn error_targets_of_the_wrong_kind() {
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"crash\"\ntarget = \"machine(tablet-1)\"\n")),
        "t.toml:10: step[0].target: crash takes a process, not a machine such as machine(tablet-1)"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"isolate_from_coord\"\ntarget = \"coord\"\n")),
        "t.toml:10: step[0].target: coord cannot be isolated from itself"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"tablet_client\"\ntarget = \"nameserver-1\"\ncmd = \"x\"\n")),
        "t.toml:10: step[0].target: tablet_client talks to a tablet, and nameserver-1 is not one"
    );
    assert_eq!(
        err(&with_base(
            "[[step]]\nat = \"1s\"\ndo = \"partition\"\ngroups = [[\"tablet-1\"], [\"machine(tablet-1)\"]]\n"
        )),
        "t.toml:10: step[0].groups[1][0]: tablet-1 is in group 0 and group 1"
    );
    assert_eq!(
        err(&with_base("[[step]]\nat = \"1s\"\ndo = \"partition\"\ngroups = [[\"tablet-1\"]]\n")),
        "t.toml:10: step[0].groups: a partition needs at least 2 groups, found 1"
    );
}

#[test]
fn error_invalid_toml_has_a_line() {
    let e = parse_str("name = \"t\"\n\n[cluster\ntablets = 3\n", "t.toml").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (Some(3), ""));
    assert!(e.to_string().starts_with("t.toml:3: invalid TOML: "), "{e}");
    let e = parse_str("name = \"t\"\nname = \"u\"\n", "t.toml").unwrap_err();
    assert_eq!(e.to_string(), "t.toml:2: invalid TOML: duplicate key");
}

// ---- robustness ---------------------------------------------------------------------------------------------

/// Parsing returns, never panics, and an error's line lies within the file.
fn parses_or_errs(src: &str) {
    if let Err(e) = parse_str(src, "fuzz.toml") {
        let lines = src.lines().count().max(1) + 1;
        assert!(e.line.is_none_or(|l| (1..=lines).contains(&l)), "line {:?} of {lines}: {e}", e.line);
        assert!(e.to_string().starts_with("fuzz.toml"));
    }
}

#[test]
fn truncations_never_panic() {
    for src in [DESIGN_EXAMPLE, EVERY_VERB] {
        for (cut, _) in src.char_indices() {
            parses_or_errs(&src[..cut]);
            parses_or_errs(&src[cut..]);
        }
    }
}

#[test]
fn mutations_never_panic() {
    // A fixed xorshift stream: the same mutations on every run (proptest is not a dependency of this crate).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap()
    };
    let pieces = [
        "\"",
        "[",
        "]",
        "[[",
        "=",
        "{",
        "}",
        "\n",
        "0",
        "-1",
        ",",
        "(",
        ")",
        "x",
        "99999999999999999999",
        "1.5",
        "ms",
        "tablet-",
        "leader(",
        "machine(",
        "é",
        "\\",
        "'",
        "#",
        "at",
        "do",
        "true",
        "[[step]]\n",
    ];
    for round in 0..4000 {
        let base = if round % 2 == 0 { EVERY_VERB } else { DESIGN_EXAMPLE };
        let mut src = base.to_string();
        for _ in 0..1 + next(3) {
            let mut at = next(src.len() + 1);
            while !src.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => src.insert_str(at, pieces[next(pieces.len())]),
                1 => {
                    let mut end = (at + 1 + next(8)).min(src.len());
                    while !src.is_char_boundary(end) {
                        end += 1;
                    }
                    src.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + next(8)).min(src.len());
                    while !src.is_char_boundary(end) {
                        end += 1;
                    }
                    src.replace_range(at..end, pieces[next(pieces.len())]);
                }
            }
        }
        parses_or_errs(&src);
    }
}

#[test]
fn the_network_verb_sets_loss_and_latency() {
    let src = with_base(
        "[[step]]\nat = \"1s\"\ndo = \"network\"\nloss = 0.05\nlatency = \"20ms..80ms\"\n\n\
         [[step]]\nat = \"2s\"\ndo = \"network\"\nlatency = \"50ms\"\n\n\
         [[step]]\nat = \"3s\"\ndo = \"network\"\nloss = 0\n",
    );
    let s = parse_str(&src, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let conditions: Vec<NetworkConditions> = s
        .steps
        .iter()
        .map(|st| match &st.action {
            Action::Network(c) => *c,
            other => panic!("{other:?}"),
        })
        .collect();
    let ms = Duration::from_millis;
    assert_eq!(conditions[0], NetworkConditions { loss_ppm: 50_000, latency_min: ms(20), latency_max: ms(80) });
    assert_eq!(
        conditions[1],
        NetworkConditions { latency_min: ms(50), latency_max: ms(50), ..NetworkConditions::DEFAULT }
    );
    assert_eq!(conditions[2], NetworkConditions::DEFAULT);
    assert_eq!(s.steps[0].action.verb(), "network");
}

#[test]
fn error_network_values() {
    let step = |rest: &str| err(&with_base(&format!("[[step]]\nat = \"1s\"\ndo = \"network\"\n{rest}")));
    assert_eq!(step(""), "t.toml:7: step[0]: network needs `loss`, `latency` or both (heal restores the defaults)");
    assert_eq!(step("loss = 1.5\n"), "t.toml:10: step[0].loss: loss is a probability from 0 to 0.9, not 1.5");
    assert_eq!(step("loss = -0.1\n"), "t.toml:10: step[0].loss: loss is a probability from 0 to 0.9, not -0.1");
    assert!(step("latency = \"80ms..20ms\"\n").contains("the minimum is above the maximum"));
    assert!(step("latency = \"fast\"\n").contains("write \"20ms..80ms\" or one duration"));
    assert!(step("latency = \"1ms..11s\"\n").contains("at most 10s one way"));
    assert!(step("delay = \"1s\"\n").contains("delay"));
}

#[test]
fn recoverdata_takes_the_client_expectations() {
    let s = parse_str(
        &with_base("[[step]]\nat = \"1s\"\ndo = \"recoverdata\"\nexpect_ok = false\nexpect_contains = [\"FAILED\"]\n"),
        "t.toml",
    )
    .unwrap();
    let want = ClientExpect { contains: vec!["FAILED".into()], not_contains: vec![], ok: Some(false) };
    assert_eq!(s.steps[0].action, Action::Recoverdata { expect: want });
    assert!(err(&with_base("[[step]]\nat = \"1s\"\ndo = \"recoverdata\"\nexpect_ok = 1\n")).contains("expect_ok"));
}
