//! `mldb-fuzz`: a fuzz campaign from the command line (simulator build only):
//! `cargo srun --release -p mldb-fuzz --bin mldb-fuzz -- --cases 1000`. Prints cases per minute and the
//! coverage-probe table; a failure is shrunk and written under `--out` (default `target/mldb-fuzz/`) as a scenario
//! file, and the exit code is 1. `--keep-going` runs all the cases, writing every failure unshrunk.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "mldb-fuzz", about = "Fault fuzzing of the simulated cluster")]
struct Args {
    /// New cases to generate and run.
    #[arg(long, default_value_t = 100)]
    cases: u32,
    /// The generator's seed (the same seed generates the same cases).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where a shrunk failing case is written.
    #[arg(long, default_value = "target/mldb-fuzz")]
    out: PathBuf,
    /// Skip the second run of each case that compares trace hashes.
    #[arg(long)]
    no_determinism: bool,
    /// Do not replay or extend fuzz/proptest-regressions/schedules.txt.
    #[arg(long)]
    no_persist: bool,
    /// Coverage run: go on after a failure (failures are written unshrunk) until --cases cases ran.
    #[arg(long)]
    keep_going: bool,
}

#[cfg(not(madsim))]
fn main() -> ExitCode {
    let _ = Args::parse();
    eprintln!("mldb-fuzz runs the simulator: build it with `cargo srun --release -p mldb-fuzz --bin mldb-fuzz`");
    ExitCode::from(2)
}

#[cfg(madsim)]
fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = mldb_fuzz::campaign::CampaignConfig {
        cases: args.cases,
        determinism: !args.no_determinism,
        out_dir: Some(args.out),
        persist: !args.no_persist,
        rng_seed: args.seed,
        ..Default::default()
    };
    if args.keep_going {
        let (report, found) = mldb_fuzz::campaign::campaign_keep_going(&cfg);
        println!("{}", report.probes.render());
        println!("{}", report.excused_summary());
        println!("{}, {} failing", report.summary(), found.len());
        for f in &found {
            let first = f.violations.lines().next().unwrap_or_default();
            let at = f.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            println!("FAIL seed {} ({} faults, unshrunk) {at}: {first}", f.case.seed, f.case.fault_count());
        }
        return if found.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let report = mldb_fuzz::campaign::campaign(&cfg);
    println!("{}", report.probes.render());
    println!("{}", report.excused_summary());
    println!("{}", report.summary());
    match report.found {
        None => ExitCode::SUCCESS,
        Some(f) => {
            println!(
                "FAIL: {} fault(s) after shrinking, seed {}:\n{}",
                f.case.fault_count(),
                f.case.seed,
                f.violations
            );
            if let Some(p) = f.path {
                println!("written to {}; replay: mldb-sim replay {} --seed {}", p.display(), p.display(), f.case.seed);
            }
            ExitCode::FAILURE
        }
    }
}
