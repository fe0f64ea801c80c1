//! The runner's own behaviour under faults it applies: a step whose target must be read from the coordination
//! service while the scenario holds that service paused fails at once with the reason, and the steps behind it
//! still run on time.
#![cfg(madsim)]

use mldb_sim::run;
use mldb_sim::scenario;

/// The fuzzer's shrunk case of generator seed 1: a crash of `leader(fuzz,0)` at the moment the coordination
/// server is paused used to wait on a metadata read that never returned, so the resume step never ran and the
/// run hit the simulator's time limit.
#[test]
fn a_role_target_while_the_coordination_server_is_paused_fails_fast() {
    let src = r#"
name = "a role target behind a paused coordination server"
seeds = 1
duration = "30s"
[cluster]
tablets = 1
nameservers = 1
taskmanagers = 0
daemon = false
[[table]]
name = "fuzz"
partitions = 1
replicas = 1
[[workload]]
kind = "write"
table = "fuzz"
rate = 20
stop = "9s"
[[step]]
at = "2s"
do = "pause"
target = "coord"
[[step]]
at = "2s"
do = "crash"
target = "leader(fuzz,0)"
[[step]]
at = "4100ms"
do = "resume"
target = "coord"
"#;
    let s = scenario::parse_str(src, "inline").unwrap();
    let r = run::run(&s, 1);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(r.failures[0].contains("the coordination server is paused"), "{:?}", r.failures);
    let lines = r.trace.lines();
    let resume = lines.iter().find(|l| l.contains("nemesis: resume coord")).expect("the resume step ran");
    let at: f64 = resume.trim_start_matches('[').split('s').next().unwrap().trim().parse().unwrap();
    assert!(at < 6.5, "the resume ran late: {resume}");
}
