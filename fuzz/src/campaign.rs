//! A fuzz campaign: proptest generates cases, each runs in the simulator, a failure is shrunk by proptest to a
//! small schedule and written as a scenario file. Failing proptest seeds are persisted in
//! `fuzz/proptest-regressions/schedules.txt`, which every later campaign (CI's included) replays first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openmldb::planted::Planted;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

use crate::case::FuzzCase;
use crate::probes::ProbeCounts;
use crate::property::run_case;
use crate::strategy;

/// The committed proptest regressions: seeds of cases that once failed, replayed before any new case.
pub const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/schedules.txt");

#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// New cases to run (the persisted regressions come on top).
    pub cases: u32,
    pub planted: Planted,
    /// Run every passing case twice and compare trace hashes.
    pub determinism: bool,
    /// Where a shrunk failing case is written as a scenario file.
    pub out_dir: Option<PathBuf>,
    /// Replay and extend the committed regression file.
    pub persist: bool,
    /// The generator's seed: the same seed generates the same cases.
    pub rng_seed: u64,
    /// Most shrink steps after a failure.
    pub max_shrink_iters: u32,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            cases: 10,
            planted: Planted::default(),
            determinism: true,
            out_dir: None,
            persist: true,
            rng_seed: 1,
            max_shrink_iters: 256,
        }
    }
}

/// A failure, shrunk.
#[derive(Debug, Clone)]
pub struct Found {
    pub case: FuzzCase,
    pub violations: String,
    /// The shrunk case as a scenario file.
    pub scenario: String,
    /// Where it was written, if it was.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct CampaignReport {
    /// Runs of the property (generated cases, replayed regressions and shrink steps).
    pub runs: u64,
    pub wall: Duration,
    pub sim_secs: f64,
    pub probes: ProbeCounts,
    /// Step failures excused by construction (see [`crate::property::Excuse`]), by name, over every run.
    pub excused: BTreeMap<&'static str, u64>,
    pub found: Option<Found>,
}

impl CampaignReport {
    pub fn cases_per_minute(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64().max(1e-9) * 60.0
    }

    /// `N cases in W s wall (S simulated s): C cases per minute`.
    pub fn summary(&self) -> String {
        format!(
            "{} cases in {:.1} s wall ({:.0} simulated s): {:.1} cases per minute",
            self.runs,
            self.wall.as_secs_f64(),
            self.sim_secs,
            self.cases_per_minute()
        )
    }

    /// The excused step failures, one line per excuse (every excuse listed, with its count).
    pub fn excused_summary(&self) -> String {
        let mut out = String::from("excused step failures (impossible by construction):");
        let names = crate::property::EXCUSES.iter().map(|(_, name, ..)| *name);
        for name in names.chain([crate::property::RECOVERDATA_DURING_A_FAULT]) {
            let n = self.excused.get(name).copied().unwrap_or(0);
            out.push_str(&format!("\n  {n:>6}  {name}"));
        }
        out
    }
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs a campaign.
pub fn campaign(cfg: &CampaignConfig) -> CampaignReport {
    let config = Config {
        cases: cfg.cases,
        max_shrink_iters: cfg.max_shrink_iters,
        failure_persistence: cfg.persist.then(|| {
            Box::new(FileFailurePersistence::Direct(REGRESSIONS)) as Box<dyn proptest::test_runner::FailurePersistence>
        }),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(cfg.rng_seed));
    let stats = Mutex::new((0u64, 0f64, ProbeCounts::default(), BTreeMap::<&'static str, u64>::new()));
    let start = Instant::now();
    let result = runner.run(&strategy::case(), |case| {
        let out = run_case(&case, cfg.planted, cfg.determinism);
        let mut s = stats.lock().expect("stats");
        s.0 += 1;
        s.1 += out.sim_secs;
        s.2.add(&out.probes);
        for (k, v) in &out.excused {
            *s.3.entry(k).or_default() += v;
        }
        if out.violations.is_empty() { Ok(()) } else { Err(TestCaseError::fail(out.violations.join("\n"))) }
    });
    let (runs, sim_secs, probes, excused) = stats.into_inner().expect("stats");
    let found = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, case)) => {
            let scenario = case.to_toml(&format!("fuzz: {} fault(s), seed {}", case.fault_count(), case.seed));
            let path = cfg.out_dir.as_ref().and_then(|dir| write_case(dir, &case, &scenario));
            Some(Found { case, violations: reason.to_string(), scenario, path })
        }
        Err(TestError::Abort(reason)) => {
            panic!("the fuzz campaign aborted: {reason}");
        }
    };
    CampaignReport { runs, wall: start.elapsed(), sim_secs, probes, excused, found }
}

/// The generator seed of a keep-going campaign's next part, after a failure ended the previous one. Not `seed +
/// 1`: that is the next campaign's own seed, so campaigns of consecutive seeds ran the same cases after their
/// first failure and counted them twice (campaigns 80 and 81 both found case 157367). A splitmix64 step lands far
/// from every small seed.
pub fn next_part_seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn write_case(dir: &Path, case: &FuzzCase, text: &str) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("fuzz-seed{}-{}faults.toml", case.seed, case.fault_count()));
    std::fs::write(&path, text).ok()?;
    Some(path)
}

/// A coverage run: `cfg.cases` cases without stopping at failures. Failures are not shrunk (shrinking would run
/// the property many more times and blur the counts); each is written unshrunk, and a normal campaign with its
/// generator seed shrinks it. Persistence is off. Returns the merged report and every failure.
pub fn campaign_keep_going(cfg: &CampaignConfig) -> (CampaignReport, Vec<Found>) {
    let start = Instant::now();
    let mut total = CampaignReport {
        runs: 0,
        wall: Duration::ZERO,
        sim_secs: 0.0,
        probes: ProbeCounts::default(),
        excused: BTreeMap::new(),
        found: None,
    };
    let mut found = Vec::new();
    let mut seed = cfg.rng_seed;
    while total.runs < u64::from(cfg.cases) {
        let left = u64::from(cfg.cases) - total.runs;
        let part = CampaignConfig {
            cases: u32::try_from(left).unwrap_or(u32::MAX),
            persist: false,
            max_shrink_iters: 0,
            rng_seed: seed,
            ..cfg.clone()
        };
        let r = campaign(&part);
        total.runs += r.runs;
        total.sim_secs += r.sim_secs;
        total.probes.add(&r.probes);
        for (k, v) in &r.excused {
            *total.excused.entry(k).or_default() += v;
        }
        match r.found {
            Some(f) => found.push(f),
            None => break,
        }
        if r.runs == 0 {
            break;
        }
        seed = next_part_seed(seed);
    }
    total.wall = start.elapsed();
    (total, found)
}

#[cfg(test)]
mod tests {
    use super::next_part_seed;

    #[test]
    fn a_keep_going_part_seed_is_no_other_campaigns_seed() {
        // The parts of the campaigns of seeds 1 to 1,000 never run under a seed another of them starts with.
        for seed in 1..=1_000u64 {
            let mut s = seed;
            for _ in 0..20 {
                s = next_part_seed(s);
                assert!(s > 1_000_000, "part seed {s} of campaign {seed}");
            }
        }
        assert_eq!(next_part_seed(7), next_part_seed(7), "deterministic");
    }
}
