#![cfg(madsim)]
#[test]
fn run_one() {
    let path = std::env::var("SCENARIO").unwrap_or_else(|_| "../scenarios/row1_leader_crash_auto.toml".into());
    let s = mldb_sim::scenario::load(std::path::Path::new(&path)).unwrap();
    let r = mldb_sim::run::run(&s, 1);
    eprintln!("failures: {:?}", r.failures);
    if let Some(rep) = &r.report {
        eprintln!("{}", rep.detail());
    }
    eprintln!("sim {:?} wall {:?} hash {}", r.sim_elapsed, r.wall_elapsed, r.hash);
    assert!(r.passed());
}
