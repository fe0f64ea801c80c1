//! Every scenario file under `scenarios/` runs in the simulator for a fixed set of seeds, and any violation fails
//! the suite; part of it runs twice and must give the same trace hash (DESIGN 8, determinism).
//!
//! Seeds per file: the file's `seeds`, capped at `MLDB_SCENARIO_SEEDS` (default 2) to keep CI short;
//! `mldb-sim run scenarios/... --seeds N` runs more.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mldb_sim::run;
use mldb_sim::scenario::{self, Scenario};

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            scenario_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn all_scenarios() -> Vec<(PathBuf, Scenario)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    scenario_files(&root, &mut files);
    assert!(!files.is_empty(), "no scenario under {}", root.display());
    files
        .into_iter()
        .map(|f| {
            let s = scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
            (f, s)
        })
        .collect()
}

/// Runs the jobs on two threads; returns one line per failure.
fn run_all(jobs: Vec<(PathBuf, Scenario, u64)>) -> Vec<String> {
    let jobs = Mutex::new(jobs);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let Some((path, s, seed)) = jobs.lock().unwrap().pop() else { break };
                    let r = run::run(&s, seed);
                    eprintln!(
                        "{} {} seed {seed}: {}",
                        if r.passed() { "PASS" } else { "FAIL" },
                        path.display(),
                        r.summary().map(|s| s.to_string()).unwrap_or_default()
                    );
                    if !r.passed() {
                        let mut why: Vec<String> = r.failures.clone();
                        if let Some(rep) = &r.report {
                            why.extend(rep.violations().iter().map(|v| v.to_string()));
                        }
                        failures.lock().unwrap().push(format!(
                            "{} seed {seed}:\n    {}\n    replay: mldb-sim replay {} --seed {seed}",
                            path.display(),
                            why.join("\n    "),
                            path.display()
                        ));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn every_scenario_passes_for_its_seeds() {
    let cap: u64 = std::env::var("MLDB_SCENARIO_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let mut jobs = Vec::new();
    for (path, s) in all_scenarios() {
        for seed in 1..=u64::from(s.seeds).min(cap) {
            jobs.push((path.clone(), s.clone(), seed));
        }
    }
    jobs.reverse();
    let failures = run_all(jobs);
    assert!(failures.is_empty(), "{} failing seed(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn table_scenarios_replay_with_the_same_trace_hash() {
    for (path, s) in all_scenarios().into_iter().filter(|(p, _)| p.to_string_lossy().contains("/table/")) {
        let (a, b) = (run::run(&s, 7), run::run(&s, 7));
        assert!(a.hash != 0, "{} did not run", path.display());
        let report = mldb_sim::check::check_determinism(7, a.hash, b.hash);
        assert!(report.violation.is_none(), "{}: {:?}", path.display(), report.violation);
    }
}
