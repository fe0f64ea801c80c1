//! The property every case must keep: the checkers of DESIGN 8 hold, with the expectations the availability-table
//! oracle derives from the schedule (the rendered scenario has no `[expect]`), and the run is deterministic.
//!
//! Steps that fail because of the state the schedule left a process in (pausing a process that is down, a
//! `submitjob` while no TaskManager is active) are not violations: the schedule is random, the system is not at
//! fault. A panic, a setup failure or a run past its duration is.

use mldb_sim::run;
use openmldb::planted::Planted;

use crate::case::FuzzCase;
use crate::probes::ProbeCounts;

/// What one case did.
#[derive(Debug, Clone, Default)]
pub struct CaseOutcome {
    /// Empty when the property held.
    pub violations: Vec<String>,
    pub probes: ProbeCounts,
    pub trace_hash: u64,
    /// Simulated seconds the run took.
    pub sim_secs: f64,
}

/// Runs `case` (twice when `determinism`, comparing trace hashes) with `planted` bugs switched on.
pub fn run_case(case: &FuzzCase, planted: Planted, determinism: bool) -> CaseOutcome {
    let text = case.to_toml("fuzz case");
    let scenario = match mldb_sim::scenario::parse_str(&text, "fuzz-case.toml") {
        Ok(s) => s,
        Err(e) => {
            return CaseOutcome {
                violations: vec![format!("the case rendered an invalid scenario: {e}")],
                ..Default::default()
            };
        }
    };
    let r = run::run_planted(&scenario, case.seed, planted);
    let mut violations: Vec<String> = r
        .report
        .as_ref()
        .map(|rep| rep.violations().iter().map(|v| format!("{:?} (pid {:?}): {}", v.kind, v.pid, v.why)).collect())
        .unwrap_or_default();
    violations.extend(r.failures.iter().filter(|f| !f.starts_with("step ")).cloned());
    if determinism && violations.is_empty() {
        let again = run::run_planted(&scenario, case.seed, planted);
        if again.hash != r.hash {
            violations.push(format!(
                "nondeterministic: seed {} gave trace hashes {:016x} and {:016x}",
                case.seed, r.hash, again.hash
            ));
        }
    }
    CaseOutcome {
        violations,
        probes: ProbeCounts::of_run(&r.trace.lines()),
        trace_hash: r.hash,
        sim_secs: r.sim_elapsed.as_secs_f64(),
    }
}
