//! The one-click recovery in the simulator: after every machine lost power it brings each partition back from
//! its longest log; a second run on the healthy cluster changes nothing; with a replica's tablet not running it
//! refuses before changing anything.
#![cfg(madsim)]

use std::path::Path;

use mldb_sim::run;
use mldb_sim::scenario;

#[test]
fn recoverdata_recovers_then_finds_nothing_to_do() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flows/recoverdata_after_cluster_down.toml");
    let s = scenario::load(&path).unwrap();
    for seed in [1, 2] {
        let r = run::run(&s, seed);
        assert!(r.passed(), "seed {seed}: {:?}", r.failures);
        let lines = r.trace.lines();
        let second = lines.iter().rposition(|l| l.contains("runner: step 8")).expect("the second recoverdata ran");
        assert!(lines[..second].iter().any(|l| l.contains("recoverdata> recoverdata: done")));
        let after = &lines[second..];
        assert!(after.iter().any(|l| l.contains("every partition is healthy")), "{after:#?}");
        assert!(!after.iter().any(|l| l.contains("op created") || l.contains("configuration changed")), "{after:#?}");
    }
}

#[test]
fn recoverdata_refuses_while_a_replica_tablet_is_down() {
    let src = r#"
name = "recoverdata with a tablet still down"
seeds = 1
duration = "40s"
[cluster]
tablets = 3
nameservers = 2
taskmanagers = 0
daemon = false
[[table]]
name = "flow"
partitions = 1
replicas = 3
[[step]]
at = "2s"
do = "crash"
target = "tablet-3"
[[step]]
at = "8s"
do = "recoverdata"
[expect]
recovery = "manual"
"#;
    let s = scenario::parse_str(src, "inline").unwrap();
    let r = run::run(&s, 1);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(r.failures[0].contains("recoverdata refused") && r.failures[0].contains("not running"), "{:?}", r.failures);
    assert!(!r.trace.lines().iter().any(|l| l.contains("configuration changed")), "nothing changed");
}
