//! The fuzzer in CI: the regression corpus replays, a short campaign passes (the committed proptest regressions
//! replay first), and a planted bug is found and shrunk to a scenario file that reproduces it.
#![cfg(madsim)]

use std::path::{Path, PathBuf};

use mldb_fuzz::campaign::{CampaignConfig, campaign};
use mldb_fuzz::property::excuse_in;
use mldb_sim::{run, scenario};
use openmldb::planted::Planted;

/// Every `fuzz/corpus/<name>--seed-<N>.toml` with its seed.
fn corpus() -> Vec<(PathBuf, u64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            let seed = stem.rsplit_once("--seed-").and_then(|(_, s)| s.parse().ok());
            let seed = seed.unwrap_or_else(|| panic!("{} is not named <name>--seed-<N>.toml", p.display()));
            (p, seed)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_regression_corpus_replays_and_passes() {
    let cases = corpus();
    assert!(!cases.is_empty(), "the corpus is empty");
    for (path, seed) in cases {
        let s = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let r = run::run(&s, seed);
        let violations: Vec<String> =
            r.report.as_ref().map(|rep| rep.violations().iter().map(|v| v.why.clone()).collect()).unwrap_or_default();
        // As in a campaign: a step failure the case made impossible by construction is excused by name.
        let lines = r.trace.lines();
        let failures: Vec<&String> = r.failures.iter().filter(|f| excuse_in(f, &lines).is_none()).collect();
        assert!(
            failures.is_empty() && r.report.as_ref().is_some_and(|rep| rep.passed()),
            "{} seed {seed}: {failures:?} {violations:?}",
            path.display()
        );
    }
}

#[test]
fn a_short_campaign_finds_nothing() {
    let cases = std::env::var("MLDB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let report = campaign(&CampaignConfig { cases, ..CampaignConfig::default() });
    println!("{}", report.probes.render());
    println!("{} runs, {:.1} cases per minute", report.runs, report.cases_per_minute());
    if let Some(f) = report.found {
        panic!("the fuzzer found a failing case ({} faults):\n{}\n{}", f.case.fault_count(), f.violations, f.scenario);
    }
}

#[test]
fn a_planted_bug_is_found_shrunk_and_replays_from_its_scenario_file() {
    let planted = Planted { never_fail_over: true, ..Planted::default() };
    let cfg = CampaignConfig {
        cases: 120,
        planted,
        determinism: false,
        persist: false,
        rng_seed: 7,
        max_shrink_iters: 64,
        ..CampaignConfig::default()
    };
    let report = campaign(&cfg);
    let found = report.found.expect("the fuzzer finds a nameserver that never fails over");
    assert!(found.case.fault_count() <= 3, "not shrunk: {} faults\n{}", found.case.fault_count(), found.scenario);
    // Without failover a crashed tablet's partitions are never recovered: the availability oracle or the
    // convergence checker says so.
    let caught = ["WorseThanDocumented", "NotAlive", "Unreadable", "NoLeader"];
    assert!(caught.iter().any(|k| found.violations.contains(k)), "{}", found.violations);
    assert!(found.case.fault_count() >= 1, "a failing case needs a fault:\n{}", found.scenario);
    // The written scenario reproduces it, and the same case keeps the property on the real build.
    let s = scenario::parse_str(&found.scenario, "found.toml").unwrap_or_else(|e| panic!("{e}"));
    let replayed = run::run_planted(&s, found.case.seed, planted);
    assert!(replayed.report.is_some_and(|r| !r.passed()), "{}", found.scenario);
    let real = mldb_fuzz::property::run_case(&found.case, Planted::default(), false);
    assert!(real.violations.is_empty(), "{:?}\n{}", real.violations, found.scenario);
}
